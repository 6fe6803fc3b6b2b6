//! A worker whose clock is wrong: the real binary started under libfaketime (Debian's
//! `faketime` package, `LD_PRELOAD` with `FAKETIME` for that process only), against the
//! shared Postgres and RabbitMQ. The database's clock decides what is due; a worker's clock only
//! paces its loops. Ten minutes fast, it does not move a Sequence IMMEDIATE change dated five
//! minutes ahead; ten minutes slow, it starts a rollout's next cohort on time.

use crate::client::ApiClient;
use crate::harness::Deployment;
use chrono::{DateTime, TimeDelta, Utc};
use reqwest::Method;
use serde_json::{json, Value};
use std::time::{Duration, Instant};

/// Where Debian's `libfaketime` package puts the library.
const LIBFAKETIME: &str = "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1";

/// The settings that run a process `offset` off the real time (`+10m`, `-10m`). Monotonic
/// clocks are left alone: timers and timeouts measure durations, which a shifted wall clock
/// must not stretch.
fn skewed(offset: &str) -> Vec<(&'static str, String)> {
    assert!(
        std::path::Path::new(LIBFAKETIME).exists(),
        "{LIBFAKETIME} is missing: install Debian's `faketime` package (.ci/run does)"
    );
    vec![
        ("LD_PRELOAD", LIBFAKETIME.to_owned()),
        ("FAKETIME", offset.to_owned()),
        ("FAKETIME_DONT_FAKE_MONOTONIC", "1".to_owned()),
    ]
}

/// The time of the last line a process logged (tracing's text format starts each line with
/// it): what its clock said.
fn last_logged_at(d: &Deployment, name: &str) -> DateTime<Utc> {
    let log = std::fs::read_to_string(crate::harness::log_dir().join(format!("{}-{name}.log", d.id))).unwrap();
    log.lines()
        .rev()
        .find_map(|line| line.split_whitespace().next()?.parse::<DateTime<Utc>>().ok())
        .unwrap_or_else(|| panic!("{name} logged no timestamped line:\n{log}"))
}

/// A LIVE Sequence plan (version 1) with `n` billing schedules that started three days ago.
async fn live_sequence_plan(api: &ApiClient, plan: &str, n: usize) {
    let body = |extra: Value| {
        let mut body = json!({"name": plan, "label": plan, "currency": "EUR", "minimum": "10.00",
                              "priceIds": ["price-basic"], "eligibleCustomerIds": []});
        body.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
        body
    };
    let price = json!({"id": "price-basic", "name": "Basic", "currency": "EUR", "amount": "10.00"});
    let (status, _) = api.call(Method::POST, "/prices", Some(price)).await;
    assert!(status == 200 || status == 400);
    let (status, created) = api.call(Method::POST, "/plans", Some(body(json!({"id": plan})))).await;
    assert_eq!(status, 200, "{created}");
    let (status, live) =
        api.call(Method::PUT, &format!("/plans/{plan}"), Some(body(json!({"versionChangeBehaviour": "NEVER"})))).await;
    assert_eq!((status.as_u16(), &live["status"]), (200, &json!("LIVE")), "{live}");
    let customers: Vec<Value> = (0..n).map(|i| json!({"id": format!("{plan}-c{i}")})).collect();
    api.post("/api/v1/customers/import", json!({ "customers": customers })).await;
    let started = Utc::now() - TimeDelta::days(3);
    let subs: Vec<Value> = (0..n)
        .map(|i| {
            json!({"id": format!("{plan}-s{i}"), "customerId": format!("{plan}-c{i}"), "planId": plan,
                   "billingPeriod": "MONTHLY", "startDate": started})
        })
        .collect();
    let task = api.post("/api/v1/subscriptions/import", json!({ "subscriptions": subs })).await;
    let done = api.wait_task_within(task["data"]["taskId"].as_str().unwrap(), Duration::from_secs(60)).await;
    assert_eq!(done["status"], "COMPLETED", "{done}");
}

/// PUTs version 2 of `plan` as an IMMEDIATE change effective at `effective`; answers its task id.
async fn immediate_change(api: &ApiClient, plan: &str, effective: DateTime<Utc>) -> String {
    let body = json!({"name": plan, "label": format!("{plan} v2"), "currency": "EUR", "minimum": "12.00",
                      "priceIds": ["price-basic"], "eligibleCustomerIds": [],
                      "versionChangeBehaviour": "IMMEDIATE", "versionEffectiveFrom": effective});
    let response = reqwest::Client::new()
        .put(format!("{}/plans/{plan}", api.base))
        .header("X-API-KEY", &api.key)
        .json(&body)
        .send()
        .await
        .unwrap();
    let task = response.headers().get("x-task-id").map(|v| v.to_str().unwrap().to_owned());
    let (status, answer) = (response.status(), response.json::<Value>().await.unwrap());
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["version"], 2, "{answer}");
    task.unwrap_or_else(|| panic!("no task for the change of {plan}: {answer}"))
}

async fn history(d: &Deployment, plan: &str) -> Vec<(DateTime<Utc>, DateTime<Utc>)> {
    sqlx::query_as(
        "SELECT h.moved_at, h.effective_from FROM subscription_version_history h
         JOIN subscriptions s ON s.id = h.subscription_id WHERE s.plan_id = $1",
    )
    .bind(plan)
    .fetch_all(&d.pool)
    .await
    .unwrap()
}

/// Whole microseconds, as Postgres keeps them.
fn micros(t: DateTime<Utc>) -> DateTime<Utc> {
    DateTime::from_timestamp_micros(t.timestamp_micros()).unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_worker_ten_minutes_off_moves_nobody_early_and_starts_cohorts_on_time() {
    let mut d = Deployment::with_env(&[("CUTOVER_SCHEDULER_TICK_MS", "200"), ("CUTOVER_BATCH_SIZE", "50")]).await;
    let api = d.api().await;

    // ten minutes fast: the only worker runs the imports, the planning and the scheduler
    d.start_worker_with("fast", &skewed("+10m"));
    live_sequence_plan(&api, "ahead", 50).await;
    live_sequence_plan(&api, "soon", 50).await;
    let skew = last_logged_at(&d, "fast") - Utc::now();
    assert!(skew > TimeDelta::minutes(9), "the worker's clock is not ahead: {skew}");

    let in_five_minutes = micros(Utc::now() + TimeDelta::minutes(5));
    let ahead = immediate_change(&api, "ahead", in_five_minutes).await;
    let in_six_seconds = micros(Utc::now() + TimeDelta::seconds(6));
    let soon = immediate_change(&api, "soon", in_six_seconds).await;

    // `soon` moves once its date has come by the database's clock, and not before
    let task = api.wait_task_within(&soon, Duration::from_secs(60)).await;
    assert_eq!(task["status"], "COMPLETED", "{task}");
    assert_eq!(task["counts"], json!({"total": 50, "processed": 50, "failed": 0}));
    let moved = history(&d, "soon").await;
    assert_eq!(moved.len(), 50);
    for (moved_at, effective_from) in &moved {
        assert_eq!(*effective_from, in_six_seconds);
        assert!(*moved_at >= in_six_seconds, "moved at {moved_at}, before its date {in_six_seconds}");
    }
    let late = moved.iter().map(|(at, _)| *at - in_six_seconds).max().unwrap();
    // meanwhile `ahead`, whose date the worker's clock passed five minutes ago, moved nobody
    assert_eq!(history(&d, "ahead").await.len(), 0);
    let scheduled = d
        .scalar(
            "SELECT count(*) FROM subscription_version_changes c JOIN subscriptions s ON s.id = c.subscription_id
             WHERE s.plan_id = 'ahead' AND c.status = 'SCHEDULED'",
        )
        .await;
    assert_eq!(scheduled, 50);
    assert_eq!(api.task(&ahead).await["counts"]["processed"], 0);
    d.terminate("fast", Duration::from_secs(30)).await;

    // ten minutes slow: the next cohort starts when the database's clock says it is due
    d.start_worker_with("slow", &skewed("-10m"));
    api.plan_with_subscriptions("roll", 200).await;
    let skew = last_logged_at(&d, "slow") - Utc::now();
    assert!(skew < TimeDelta::minutes(-9), "the worker's clock is not behind: {skew}");
    api.draft("roll", json!({"displayName": "Roll v2"})).await;
    let answer = api.post("/api/v1/plans/roll/rollouts", json!({"cohorts": [50, 100], "interval": "PT3S"})).await;
    let rollout = answer["data"]["taskId"].as_str().unwrap().to_owned();
    let time = |value: &Value| value.as_str().map(|t| t.parse::<DateTime<Utc>>().unwrap());
    // the second cohort's due time, as the task said while it waited, and when it started
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut due = None;
    let started = loop {
        let task = api.task(&rollout).await;
        let cohort = &task["rollout"]["currentCohort"];
        if cohort["index"] == 1 {
            break time(&cohort["startedAt"]).unwrap();
        }
        due = time(&task["rollout"]["nextCohortAt"]).or(due);
        assert!(Instant::now() < deadline, "the second cohort did not start: {task}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let due = due.expect("the task never said when its second cohort was due");
    let task = api.wait_task_within(&rollout, Duration::from_secs(60)).await;
    assert_eq!(task["status"], "COMPLETED", "{task}");
    let counts = &task["counts"];
    assert_eq!((&counts["total"], &counts["processed"], &counts["failed"]), (&json!(200), &json!(200), &json!(0)));
    let rows =
        d.scalar(&format!("SELECT count(*) FROM subscription_version_history WHERE task_id = '{rollout}'")).await;
    let distinct = d
        .scalar(&format!(
            "SELECT count(DISTINCT subscription_id) FROM subscription_version_history WHERE task_id = '{rollout}'"
        ))
        .await;
    assert_eq!((rows, distinct), (200, 200));
    let after_due = started - due;
    eprintln!(
        "wrong clock: +10 min worker moved a change dated 6 s ahead {late} after its date, and none dated 5 min ahead; \
         -10 min worker started the next cohort {after_due} after it was due"
    );
    assert!(after_due >= TimeDelta::zero(), "the cohort started {after_due} before it was due");
    assert!(after_due < TimeDelta::seconds(3), "the cohort started {after_due} after it was due");
}
