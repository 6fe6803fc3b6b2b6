//! Sequence's dialect through HTTP (Basic auth, the key as user name), in-process with a fast
//! scheduler: each `versionChangeBehaviour`, `makeVersionEffectiveFromOutset`, supersession by
//! a newer version, two schedulers at once, Stigg's per-subscription migrate, idempotent PUTs,
//! and 400s that change nothing. Assertions are on rows in Postgres: who moved, when, and one
//! history row each.

use crate::stack::{worker_context, Stack};
use chrono::{DateTime, Months, TimeDelta, Utc};
use domain::{BillingPeriod, VersionChangeBehaviour};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use sqlx::PgPool;
use std::time::{Duration, Instant};
use tokio_util::sync::{CancellationToken, DropGuard};

const TICK: Duration = Duration::from_millis(150);

/// Starts a scheduler on the stack's database; it stops when the guard is dropped.
pub(crate) fn scheduler(stack: &Stack, name: &str) -> DropGuard {
    let cancel = CancellationToken::new();
    let ctx = worker_context(&stack.pool, &stack.topology, name, 100);
    tokio::spawn(worker::run_scheduler(ctx, TICK, cancel.clone()));
    cancel.drop_guard()
}

pub(crate) struct Answer {
    pub status: StatusCode,
    pub body: Value,
    pub task: Option<String>,
}

pub(crate) async fn call(
    stack: &Stack,
    method: Method,
    path: &str,
    body: Option<Value>,
    headers: &[(&str, &str)],
) -> Answer {
    let client = reqwest::Client::new();
    let mut request =
        client.request(method, format!("{}{path}", stack.api.base)).basic_auth(&stack.api.key, None::<&str>);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.unwrap();
    let status = response.status();
    let task = response.headers().get("x-task-id").map(|v| v.to_str().unwrap().to_owned());
    Answer { status, body: response.json().await.unwrap_or(Value::Null), task }
}

pub(crate) async fn ok(stack: &Stack, method: Method, path: &str, body: Value) -> Answer {
    let answer = call(stack, method.clone(), path, Some(body), &[]).await;
    assert_eq!(answer.status, StatusCode::OK, "{method} {path}: {}", answer.body);
    answer
}

pub(crate) fn plan_body(name: &str, extra: Value) -> Value {
    let mut body = json!({
        "name": name, "label": format!("{name} (internal)"), "currency": "EUR", "minimum": "10.00",
        "priceIds": ["price-basic"], "eligibleCustomerIds": [],
    });
    if let (Some(b), Some(e)) = (body.as_object_mut(), extra.as_object()) {
        for (k, v) in e {
            b.insert(k.clone(), v.clone());
        }
    }
    body
}

/// A LIVE plan (version 1) with one schedule per start date, ids `<plan>-s<i>`.
pub(crate) async fn live_plan(stack: &Stack, plan: &str, starts: &[DateTime<Utc>]) {
    let (status, _) = stack
        .api
        .call(
            Method::POST,
            "/prices",
            Some(json!({"id": "price-basic", "name": "Basic", "currency": "EUR", "amount": "10.00"})),
        )
        .await;
    assert!(status == StatusCode::OK || status == StatusCode::BAD_REQUEST);
    let created = ok(stack, Method::POST, "/plans", plan_body(plan, json!({"id": plan}))).await;
    assert_eq!(created.body["status"], "DRAFT");
    assert_eq!(created.body["version"], 1);
    let live =
        ok(stack, Method::PUT, &format!("/plans/{plan}"), plan_body(plan, json!({"versionChangeBehaviour": "NEVER"})))
            .await;
    assert_eq!(live.body["status"], "LIVE", "{}", live.body);
    assert_eq!(live.body["version"], 1);
    assert!(live.task.is_none());
    if starts.is_empty() {
        return;
    }
    let customers: Vec<Value> = (0..starts.len()).map(|i| json!({"id": format!("{plan}-c{i}")})).collect();
    stack.api.post("/api/v1/customers/import", json!({ "customers": customers })).await;
    let subs: Vec<Value> = starts
        .iter()
        .enumerate()
        .map(|(i, start)| {
            json!({"id": format!("{plan}-s{i}"), "customerId": format!("{plan}-c{i}"), "planId": plan,
                   "billingPeriod": "MONTHLY", "startDate": start})
        })
        .collect();
    let task = stack.api.post("/api/v1/subscriptions/import", json!({ "subscriptions": subs })).await;
    let done = stack.api.wait_task_within(task["data"]["taskId"].as_str().unwrap(), Duration::from_secs(60)).await;
    assert_eq!(done["status"], "COMPLETED", "{done}");
}

/// A start date whose next monthly billing date is `ahead` from now.
pub(crate) fn billing_in(ahead: Duration) -> DateTime<Utc> {
    (Utc::now() + TimeDelta::from_std(ahead).unwrap()).checked_sub_months(Months::new(1)).unwrap()
}

pub(crate) async fn version_of(pool: &PgPool, subscription: &str) -> i32 {
    sqlx::query_scalar(
        "SELECT v.version_number FROM subscriptions s JOIN plan_versions v ON v.id = s.plan_version_id WHERE s.id = $1",
    )
    .bind(subscription)
    .fetch_one(pool)
    .await
    .unwrap()
}

pub(crate) async fn count(pool: &PgPool, sql: &str) -> i64 {
    sqlx::query_scalar::<_, i64>(sql).fetch_one(pool).await.unwrap()
}

pub(crate) async fn wait_until(what: &str, deadline: Duration, mut check: impl AsyncFnMut() -> bool) {
    let start = Instant::now();
    while !check().await {
        assert!(start.elapsed() < deadline, "{what} did not happen within {deadline:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

pub(crate) async fn wait_planned(pool: &PgPool, task: &str) {
    wait_until("planning", Duration::from_secs(30), async || {
        count(pool, &format!("SELECT count(*) FROM tasks WHERE id = '{task}' AND planned_at IS NOT NULL")).await == 1
    })
    .await;
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn sequence_drafts_edit_in_place_and_never_moves_nobody(pool: PgPool) {
    let stack = Stack::start(pool, 1, 100).await;
    ok(
        &stack,
        Method::POST,
        "/prices",
        json!({"id": "price-basic", "name": "Basic", "currency": "EUR", "amount": "10"}),
    )
    .await;
    let draft = ok(&stack, Method::POST, "/plans", plan_body("draft", json!({"id": "draft"}))).await;
    let edited = ok(&stack, Method::PUT, "/plans/draft", plan_body("draft", json!({"label": "renamed"}))).await;
    assert!(edited.task.is_none());
    assert_eq!(edited.body["status"], "DRAFT");
    assert_eq!(edited.body["version"], 1);
    assert_eq!(edited.body["label"], "renamed");
    assert_eq!(edited.body["createdAt"], draft.body["createdAt"]);
    for field in [
        "id",
        "name",
        "label",
        "type",
        "sequenceAccountId",
        "version",
        "currency",
        "minimum",
        "prices",
        "parentId",
        "eligibleCustomerIds",
        "status",
        "versionEffectiveFrom",
        "versionChangeBehaviour",
        "createdAt",
        "updatedAt",
        "schedulesCount",
    ] {
        assert!(edited.body.get(field).is_some(), "missing {field}: {}", edited.body);
    }
    assert_eq!(edited.body["prices"][0]["id"], "price-basic");
    // a schedule cannot start on a plan that is not LIVE
    stack.api.post("/api/v1/customers/import", json!({"customers": [{"id": "early"}]})).await;
    let refused =
        call(&stack, Method::POST, "/billing-schedules", Some(json!({"customerId": "early", "planId": "draft"})), &[])
            .await;
    assert_eq!(refused.status, StatusCode::BAD_REQUEST, "{}", refused.body);

    live_plan(&stack, "never", &[Utc::now(), Utc::now()]).await;
    let v2 =
        ok(&stack, Method::PUT, "/plans/never", plan_body("never", json!({"versionChangeBehaviour": "NEVER"}))).await;
    assert_eq!(v2.body["version"], 2);
    assert_eq!(v2.body["status"], "LIVE");
    assert_eq!(v2.body["schedulesCount"], 2);
    assert!(v2.task.is_none(), "NEVER accepts no task");
    assert_eq!(version_of(&stack.pool, "never-s0").await, 1);
    assert_eq!(count(&stack.pool, "SELECT count(*) FROM subscription_version_history").await, 0);
    // new schedules get the new version
    stack.api.post("/api/v1/customers/import", json!({"customers": [{"id": "late"}]})).await;
    let schedule = ok(
        &stack,
        Method::POST,
        "/billing-schedules",
        json!({"id": "late-s", "customerId": "late", "planId": "never", "billingPeriod": "MONTHLY"}),
    )
    .await;
    assert_eq!(schedule.body["planVersion"], 2);
    let listed = call(&stack, Method::GET, "/billing-schedules?planId=never", None, &[]).await;
    assert_eq!(listed.body["data"].as_array().unwrap().len(), 3);
    let fetched = call(&stack, Method::GET, "/plans/never", None, &[("Sequence-Version", "2024-05-09")]).await;
    assert_eq!(fetched.body["schedulesCount"], 3);
    assert_eq!(fetched.body["version"], 2);
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn immediate_moves_every_schedule_now(pool: PgPool) {
    let stack = Stack::start(pool, 1, 7).await;
    let _scheduler = scheduler(&stack, "s1");
    live_plan(&stack, "imm", &[Utc::now() - TimeDelta::days(3); 20]).await;
    let put =
        ok(&stack, Method::PUT, "/plans/imm", plan_body("imm", json!({"versionChangeBehaviour": "IMMEDIATE"}))).await;
    assert_eq!(put.body["version"], 2);
    let task_id = put.task.expect("X-Task-Id");
    let task = stack.api.wait_task(&task_id).await;
    assert_eq!(task["status"], "COMPLETED", "{task}");
    assert_eq!(task["taskType"], "SUBSCRIPTION_MIGRATION");
    assert_eq!(task["counts"]["processed"], 20);
    assert_eq!(count(&stack.pool, "SELECT count(*) FROM subscriptions s JOIN plan_versions v ON v.id = s.plan_version_id WHERE v.version_number = 2").await, 20);
    assert_eq!(
        count(
            &stack.pool,
            &format!(
                "SELECT count(DISTINCT subscription_id) FROM subscription_version_history WHERE task_id = '{task_id}'"
            )
        )
        .await,
        20
    );
    assert_eq!(count(&stack.pool, "SELECT count(*) FROM subscription_version_history").await, 20);
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn immediate_with_a_future_effective_from_waits_for_it(pool: PgPool) {
    let stack = Stack::start(pool, 1, 100).await;
    let _scheduler = scheduler(&stack, "s1");
    live_plan(&stack, "later", &[Utc::now() - TimeDelta::days(3); 5]).await;
    // whole microseconds, as Postgres keeps them
    let effective = DateTime::from_timestamp_micros((Utc::now() + TimeDelta::seconds(3)).timestamp_micros()).unwrap();
    let put = ok(
        &stack,
        Method::PUT,
        "/plans/later",
        plan_body("later", json!({"versionChangeBehaviour": "IMMEDIATE", "versionEffectiveFrom": effective})),
    )
    .await;
    assert_eq!(put.body["versionEffectiveFrom"].as_str().map(|s| s.parse::<DateTime<Utc>>().unwrap()), Some(effective));
    let task_id = put.task.unwrap();
    wait_planned(&stack.pool, &task_id).await;
    assert!(Utc::now() < effective, "planning took too long for this test's timing");
    assert_eq!(
        count(&stack.pool, "SELECT count(*) FROM subscription_version_changes WHERE status = 'SCHEDULED'").await,
        5
    );
    assert_eq!(version_of(&stack.pool, "later-s0").await, 1);
    let task = stack.api.wait_task_within(&task_id, Duration::from_secs(20)).await;
    assert_eq!(task["status"], "COMPLETED", "{task}");
    let moves: Vec<(DateTime<Utc>, DateTime<Utc>)> =
        sqlx::query_as("SELECT moved_at, effective_from FROM subscription_version_history")
            .fetch_all(&stack.pool)
            .await
            .unwrap();
    assert_eq!(moves.len(), 5);
    for (moved_at, effective_from) in moves {
        assert_eq!(effective_from, effective);
        assert!(moved_at >= effective, "moved at {moved_at}, before {effective}");
        assert!(moved_at - effective < TimeDelta::from_std(TICK * 4).unwrap() + TimeDelta::milliseconds(500));
    }
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn next_billing_date_across_a_thousand_schedules(pool: PgPool) {
    let stack = Stack::start(pool, 1, 100).await;
    let _scheduler = scheduler(&stack, "s1");
    let now = Utc::now();
    // 995 anchors spread over the past year (billing dates from hours to weeks away), and 5
    // whose billing date is 3 seconds away
    let mut starts: Vec<DateTime<Utc>> =
        (1..=995).map(|i| now - TimeDelta::hours(i * 7 + 2) - TimeDelta::seconds(i * 13)).collect();
    let due_at = billing_in(Duration::from_secs(3));
    starts.extend(std::iter::repeat_n(due_at, 5));
    live_plan(&stack, "nbd", &starts).await;

    let asked = Instant::now();
    let put =
        ok(&stack, Method::PUT, "/plans/nbd", plan_body("nbd", json!({"versionChangeBehaviour": "NEXT_BILLING_DATE"})))
            .await;
    let answered = asked.elapsed();
    let task_id = put.task.unwrap();
    wait_planned(&stack.pool, &task_id).await;
    let planned_after = asked.elapsed();
    let planned: DateTime<Utc> = sqlx::query_scalar(&format!("SELECT planned_at FROM tasks WHERE id = '{task_id}'"))
        .fetch_one(&stack.pool)
        .await
        .unwrap();
    let planning_ms: i64 = sqlx::query_scalar(&format!(
        "SELECT (data->>'planningMs')::bigint FROM task_events WHERE task_id = '{task_id}' AND kind = 'planned'"
    ))
    .fetch_one(&stack.pool)
    .await
    .unwrap();
    println!(
        "1000 NEXT_BILLING_DATE moves: PUT answered in {answered:?}, planned (visible) after {planned_after:?}, \
         planning statement {planning_ms} ms"
    );

    // every apply_at is the Rust policy's answer for that anchor at planning time
    let changes: Vec<(String, DateTime<Utc>, DateTime<Utc>, String)> = sqlx::query_as(
        "SELECT s.id, s.start_date, c.apply_at, c.status FROM subscription_version_changes c
         JOIN subscriptions s ON s.environment_id = c.environment_id AND s.id = c.subscription_id",
    )
    .fetch_all(&stack.pool)
    .await
    .unwrap();
    assert_eq!(changes.len(), 1000);
    for (id, start, apply_at, _) in &changes {
        let expected =
            VersionChangeBehaviour::NextBillingDate.move_at(*start, BillingPeriod::Monthly, planned, None).unwrap();
        assert_eq!(*apply_at, expected, "{id}: start {start}");
    }
    // the five due ones move within a few ticks of their billing date; nobody else does
    wait_until("the due moves", Duration::from_secs(15), async || {
        count(&stack.pool, "SELECT count(*) FROM subscription_version_history").await == 5
    })
    .await;
    tokio::time::sleep(TICK * 3).await;
    let moved: Vec<(String, DateTime<Utc>, DateTime<Utc>)> = sqlx::query_as(
        "SELECT h.subscription_id, h.moved_at, c.apply_at FROM subscription_version_history h
         JOIN subscription_version_changes c ON c.subscription_id = h.subscription_id AND c.task_id = h.task_id",
    )
    .fetch_all(&stack.pool)
    .await
    .unwrap();
    assert_eq!(moved.len(), 5);
    for (id, moved_at, apply_at) in moved {
        let index: usize = id.trim_start_matches("nbd-s").parse().unwrap();
        assert!(index >= 995, "{id} moved but was not due");
        assert!(moved_at >= apply_at && moved_at - apply_at < TimeDelta::seconds(2), "{id}: {moved_at} vs {apply_at}");
        assert_eq!(version_of(&stack.pool, &id).await, 2);
    }
    assert_eq!(
        count(&stack.pool, "SELECT count(*) FROM subscription_version_changes WHERE status = 'SCHEDULED'").await,
        995
    );
    assert_eq!(count(&stack.pool, "SELECT count(*) FROM subscription_version_changes WHERE status = 'DONE'").await, 5);
    assert_eq!(
        count(&stack.pool, "SELECT count(*) FROM subscriptions s JOIN plan_versions v ON v.id = s.plan_version_id WHERE v.version_number = 1").await,
        995
    );
    let task = stack.api.task(&task_id).await;
    assert_eq!(task["status"], "IN_PROGRESS");
    assert_eq!(task["counts"], json!({"total": 1000, "processed": 5, "failed": 0}));
    // the schedule shows its scheduled change
    let schedule = call(&stack, Method::GET, "/billing-schedules/nbd-s0", None, &[]).await;
    assert_eq!(schedule.body["scheduledVersionChange"]["status"], "SCHEDULED");
    assert_eq!(schedule.body["scheduledVersionChange"]["version"], 2);
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn sql_and_rust_agree_on_billing_dates(pool: PgPool) {
    let at = |s: &str| s.parse::<DateTime<Utc>>().unwrap();
    let anchors =
        ["2024-01-31T23:59:59.123456Z", "2024-02-29T00:00:00Z", "2025-03-30T12:00:00Z", "2023-12-31T05:00:00Z"];
    let afters = [
        "2024-02-29T23:59:59Z",
        "2025-02-28T12:00:00Z",
        "2026-05-31T00:00:00Z",
        "2023-01-01T00:00:00Z",
        "2028-02-29T12:00:00.5Z",
    ];
    for anchor in anchors {
        for after in afters {
            for period in [BillingPeriod::Monthly, BillingPeriod::Annually] {
                let sql: DateTime<Utc> = sqlx::query_scalar("SELECT next_billing_date($1, $2, $3)")
                    .bind(at(anchor))
                    .bind(period.as_str())
                    .bind(at(after))
                    .fetch_one(&pool)
                    .await
                    .unwrap();
                assert_eq!(sql, period.next_billing_date(at(anchor), at(after)), "{anchor} {period} after {after}");
            }
        }
    }
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn outset_dates_the_move_from_the_schedule_start(pool: PgPool) {
    let stack = Stack::start(pool, 1, 100).await;
    let start = "2025-01-15T08:30:00Z".parse::<DateTime<Utc>>().unwrap();
    live_plan(&stack, "outset", &[start, start]).await;
    let put = ok(
        &stack,
        Method::PUT,
        "/plans/outset",
        plan_body("outset", json!({"versionChangeBehaviour": "IMMEDIATE", "makeVersionEffectiveFromOutset": true})),
    )
    .await;
    let task = stack.api.wait_task(&put.task.unwrap()).await;
    assert_eq!(task["status"], "COMPLETED", "{task}");
    let effective: Vec<DateTime<Utc>> = sqlx::query_scalar("SELECT effective_from FROM subscription_version_history")
        .fetch_all(&stack.pool)
        .await
        .unwrap();
    assert_eq!(effective, vec![start, start]);
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn a_newer_version_supersedes_scheduled_moves(pool: PgPool) {
    let stack = Stack::start(pool, 1, 100).await;
    let _scheduler = scheduler(&stack, "s1");
    let soon = billing_in(Duration::from_secs(2));
    let far = Utc::now() - TimeDelta::days(10);
    live_plan(&stack, "sup", &[soon, soon, far, far]).await;
    let first =
        ok(&stack, Method::PUT, "/plans/sup", plan_body("sup", json!({"versionChangeBehaviour": "NEXT_BILLING_DATE"})))
            .await
            .task
            .unwrap();
    wait_until("the due moves to v2", Duration::from_secs(15), async || {
        count(&stack.pool, &format!("SELECT count(*) FROM subscription_version_history WHERE task_id = '{first}'"))
            .await
            == 2
    })
    .await;
    let second =
        ok(&stack, Method::PUT, "/plans/sup", plan_body("sup", json!({"versionChangeBehaviour": "NEXT_BILLING_DATE"})))
            .await;
    assert_eq!(second.body["version"], 3);
    let second = second.task.unwrap();
    wait_planned(&stack.pool, &second).await;
    // the first task's unapplied moves are canceled, and it ends CANCELED; applied moves stay
    assert_eq!(
        count(
            &stack.pool,
            &format!(
                "SELECT count(*) FROM subscription_version_changes WHERE task_id = '{first}' AND status = 'CANCELED'"
            )
        )
        .await,
        2
    );
    let first_task = stack.api.task(&first).await;
    assert_eq!(first_task["status"], "CANCELED", "{first_task}");
    assert_eq!(first_task["counts"]["processed"], 2);
    assert_eq!(version_of(&stack.pool, "sup-s0").await, 2);
    assert_eq!(version_of(&stack.pool, "sup-s2").await, 1);
    // re-planned: every schedule now moves to version 3
    let replanned: Vec<(String, i32)> = sqlx::query_as(
        "SELECT c.subscription_id, v.version_number FROM subscription_version_changes c
         JOIN plan_versions v ON v.id = c.target_version_id WHERE c.status = 'SCHEDULED' ORDER BY 1",
    )
    .fetch_all(&stack.pool)
    .await
    .unwrap();
    assert_eq!(replanned, vec![("sup-s0".into(), 3), ("sup-s1".into(), 3), ("sup-s2".into(), 3), ("sup-s3".into(), 3)]);
    assert_eq!(
        count(&stack.pool, &format!("SELECT count(*) FROM subscription_version_changes WHERE task_id = '{second}'"))
            .await,
        4
    );
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn two_schedulers_never_move_a_schedule_twice(pool: PgPool) {
    let stack = Stack::start(pool, 1, 100).await;
    let _a = scheduler(&stack, "a");
    let _b = scheduler(&stack, "b");
    let starts: Vec<DateTime<Utc>> = (0..300).map(|i| billing_in(Duration::from_millis(2500 + i * 3))).collect();
    live_plan(&stack, "race", &starts).await;
    let task = ok(
        &stack,
        Method::PUT,
        "/plans/race",
        plan_body("race", json!({"versionChangeBehaviour": "NEXT_BILLING_DATE"})),
    )
    .await
    .task
    .unwrap();
    let done = stack.api.wait_task_within(&task, Duration::from_secs(30)).await;
    assert_eq!(done["status"], "COMPLETED", "{done}");
    assert_eq!(done["counts"], json!({"total": 300, "processed": 300, "failed": 0}));
    assert_eq!(count(&stack.pool, "SELECT count(*) FROM subscription_version_history").await, 300);
    assert_eq!(
        count(&stack.pool, "SELECT count(DISTINCT subscription_id) FROM subscription_version_history").await,
        300
    );
    assert_eq!(
        count(&stack.pool, "SELECT count(*) FROM subscription_version_changes WHERE status = 'DONE'").await,
        300
    );
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn stigg_migrate_now_and_at_the_end_of_the_billing_period(pool: PgPool) {
    let stack = Stack::start(pool, 1, 100).await;
    let _scheduler = scheduler(&stack, "s1");
    live_plan(&stack, "mig", &[Utc::now() - TimeDelta::days(2), billing_in(Duration::from_secs(2))]).await;
    ok(&stack, Method::PUT, "/plans/mig", plan_body("mig", json!({"versionChangeBehaviour": "NEVER"}))).await;

    // IMMEDIATE (the default): answered after the move, with a COMPLETED task and a history row
    let (status, now) = stack.api.call(Method::POST, "/api/v1/subscriptions/mig-s0/migrate", None).await;
    assert_eq!(status, StatusCode::OK, "{now}");
    assert_eq!(now["data"]["planVersion"], 2);
    assert_eq!(version_of(&stack.pool, "mig-s0").await, 2);
    assert_eq!(
        count(&stack.pool, "SELECT count(*) FROM subscription_version_history WHERE subscription_id = 'mig-s0'").await,
        1
    );
    assert_eq!(
        count(
            &stack.pool,
            "SELECT count(*) FROM tasks WHERE task_type = 'SUBSCRIPTION_MIGRATION' AND status = 'COMPLETED'"
        )
        .await,
        1
    );
    let (status, again) = stack.api.call(Method::POST, "/api/v1/subscriptions/mig-s0/migrate", Some(json!({}))).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(again["code"], "SubscriptionAlreadyOnLatestPlan");

    // END_OF_BILLING_PERIOD: scheduled at the next billing date, shown in futureUpdates
    let (status, later) = stack
        .api
        .call(
            Method::POST,
            "/api/v1/subscriptions/mig-s1/migrate",
            Some(json!({"subscriptionMigrationTime": "END_OF_BILLING_PERIOD"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{later}");
    assert_eq!(later["data"]["planVersion"], 1);
    let update = &later["data"]["futureUpdates"][0];
    assert_eq!(update["subscriptionScheduleType"], "MIGRATE_TO_LATEST");
    assert_eq!(update["scheduleStatus"], "SCHEDULED");
    assert_eq!(update["targetPackage"], json!({"id": "mig", "versionNumber": 2}));
    let when: DateTime<Utc> = update["scheduledExecutionTime"].as_str().unwrap().parse().unwrap();
    assert!(when > Utc::now() && when < Utc::now() + TimeDelta::seconds(3), "{when}");
    let (_, twice) = stack
        .api
        .call(
            Method::POST,
            "/api/v1/subscriptions/mig-s1/migrate",
            Some(json!({"subscriptionMigrationTime": "END_OF_BILLING_PERIOD"})),
        )
        .await;
    assert_eq!(twice["code"], "ScheduledMigrationAlreadyExistsError");
    wait_until("the scheduled migrate", Duration::from_secs(15), async || version_of(&stack.pool, "mig-s1").await == 2)
        .await;
    let (_, got) = stack.api.call(Method::GET, "/api/v1/subscriptions/mig-s1", None).await;
    assert_eq!(got["data"]["futureUpdates"][0]["scheduleStatus"], "DONE", "{got}");
    wait_until("both migrate tasks to finish", Duration::from_secs(5), async || {
        count(
            &stack.pool,
            "SELECT count(*) FROM tasks WHERE task_type = 'SUBSCRIPTION_MIGRATION' AND status = 'COMPLETED'",
        )
        .await
            == 2
    })
    .await;
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn an_idempotent_put_is_done_once(pool: PgPool) {
    let stack = Stack::start(pool, 1, 100).await;
    live_plan(&stack, "idem", &[Utc::now()]).await;
    let body = plan_body("idem", json!({"versionChangeBehaviour": "IMMEDIATE"}));
    let key = [("Idempotency-Key", "put-1")];
    let first = call(&stack, Method::PUT, "/plans/idem", Some(body.clone()), &key).await;
    let second = call(&stack, Method::PUT, "/plans/idem", Some(body.clone()), &key).await;
    assert_eq!(first.status, StatusCode::OK, "{}", first.body);
    assert_eq!(second.status, StatusCode::OK);
    assert!(first.task.is_some());
    assert_eq!(first.task, second.task);
    assert_eq!(first.body["version"], 2);
    assert_eq!(first.body, second.body);
    assert_eq!(count(&stack.pool, "SELECT count(*) FROM plan_versions WHERE plan_id = 'idem'").await, 2);
    assert_eq!(count(&stack.pool, "SELECT count(*) FROM tasks WHERE task_type = 'SUBSCRIPTION_MIGRATION'").await, 1);
    let other = call(&stack, Method::PUT, "/plans/idem", Some(plan_body("other", json!({}))), &key).await;
    assert_eq!(other.status, StatusCode::BAD_REQUEST);
    assert_eq!(other.body["code"], "BadUserInput");
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn bad_updates_are_refused_and_change_nothing(pool: PgPool) {
    let stack = Stack::start(pool, 1, 100).await;
    live_plan(&stack, "bad", &[Utc::now()]).await;
    let before = call(&stack, Method::GET, "/plans/bad", None, &[]).await.body;
    let mut missing = plan_body("bad", json!({"versionChangeBehaviour": "IMMEDIATE"}));
    missing.as_object_mut().unwrap().remove("label");
    let cases = [
        (
            plan_body("bad", json!({"versionChangeBehaviour": "IMMEDIATE", "versionEffectiveFrom": "next tuesday"})),
            vec![],
        ),
        (plan_body("bad", json!({"versionChangeBehaviour": "IMMEDIATE", "currency": "XYZ"})), vec![]),
        (plan_body("bad", json!({"versionChangeBehaviour": "SOMETIMES"})), vec![]),
        (missing, vec![]),
        (plan_body("bad", json!({"versionChangeBehaviour": "IMMEDIATE"})), vec![("Sequence-Version", "2020-01-01")]),
    ];
    for (body, headers) in cases {
        let mut headers = headers;
        headers.push(("Idempotency-Key", "bad-1"));
        let answer = call(&stack, Method::PUT, "/plans/bad", Some(body.clone()), &headers).await;
        assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{body}: {}", answer.body);
        assert_eq!(answer.body["code"], "BadUserInput", "{}", answer.body);
        assert!(answer.body["message"].as_str().is_some_and(|m| !m.is_empty()));
        assert!(answer.task.is_none());
    }
    let after = call(&stack, Method::GET, "/plans/bad", None, &[]).await.body;
    assert_eq!(before, after);
    assert_eq!(count(&stack.pool, "SELECT count(*) FROM plan_versions WHERE plan_id = 'bad'").await, 1);
    assert_eq!(count(&stack.pool, "SELECT count(*) FROM tasks WHERE task_type = 'SUBSCRIPTION_MIGRATION'").await, 0);
    assert_eq!(count(&stack.pool, "SELECT count(*) FROM idempotency_keys").await, 0);
    let unknown = call(&stack, Method::PUT, "/plans/nope", Some(plan_body("nope", json!({}))), &[]).await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);
    assert_eq!(unknown.body["code"], "PlanNotFound");
}

/// A schedule's NEXT_BILLING_DATE move withdrawn through Stigg's
/// `DELETE /api/v1/subscriptions/{id}/future-update/schedule` is never applied; the migration
/// applies the others and still ends COMPLETED at 100 %: the withdrawn move leaves the task's
/// total. Withdrawing the only move of a migration ends it CANCELED: it moved nobody.
#[sqlx::test(migrator = "store::MIGRATOR")]
async fn a_withdrawn_next_billing_date_move_is_never_applied_and_the_migration_still_ends(pool: PgPool) {
    let stack = Stack::start(pool, 1, 100).await;
    let _scheduler = scheduler(&stack, "s1");
    let due = billing_in(Duration::from_secs(3));
    live_plan(&stack, "wd", &[due, due, due]).await;
    live_plan(&stack, "wd-last", &[billing_in(Duration::from_secs(3600))]).await;

    let put =
        ok(&stack, Method::PUT, "/plans/wd", plan_body("wd", json!({"versionChangeBehaviour": "NEXT_BILLING_DATE"})))
            .await;
    let task = put.task.unwrap();
    wait_planned(&stack.pool, &task).await;
    let (status, body) =
        stack.api.call(Method::DELETE, "/api/v1/subscriptions/wd-s0/future-update/schedule", None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body, json!({"data": {"id": "wd-s0"}}));

    let done = stack.api.wait_task_within(&task, Duration::from_secs(30)).await;
    assert_eq!(done["status"], "COMPLETED", "{done}");
    assert_eq!(done["counts"], json!({"total": 2, "processed": 2, "failed": 0}), "{done}");
    assert_eq!(done["progress"], 100, "{done}");
    assert_eq!(version_of(&stack.pool, "wd-s0").await, 1);
    assert_eq!(version_of(&stack.pool, "wd-s1").await, 2);
    assert_eq!(version_of(&stack.pool, "wd-s2").await, 2);
    let statuses = count(
        &stack.pool,
        "SELECT count(*) FROM subscription_version_changes WHERE subscription_id = 'wd-s0' AND status = 'CANCELED'",
    )
    .await;
    assert_eq!(statuses, 1);

    // the only move of a migration withdrawn: nothing is left for it to do, it ends CANCELED
    let put = ok(
        &stack,
        Method::PUT,
        "/plans/wd-last",
        plan_body("wd-last", json!({"versionChangeBehaviour": "NEXT_BILLING_DATE"})),
    )
    .await;
    let task = put.task.unwrap();
    wait_planned(&stack.pool, &task).await;
    let (status, body) =
        stack.api.call(Method::DELETE, "/api/v1/subscriptions/wd-last-s0/future-update/schedule", None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let ended = stack.api.task(&task).await;
    assert_eq!(ended["status"], "CANCELED", "{ended}");
    assert_eq!(version_of(&stack.pool, "wd-last-s0").await, 1);
}
