//! Previews against the migrations they preview, in-process with real workers: the preview's
//! counts and ids equal what the publish (or the Sequence update) then moves or schedules, and
//! the preview itself changes no row.

use crate::sequence::{billing_in, live_plan, ok, plan_body, scheduler, wait_planned, wait_until};
use crate::stack::Stack;
use chrono::{DateTime, TimeDelta, Utc};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use sqlx::PgPool;
use std::collections::BTreeMap;
use std::time::Duration;

/// Every table a preview could touch, counted, and who is on which version.
async fn everything(pool: &PgPool) -> String {
    let mut parts = Vec::new();
    for table in [
        "tasks",
        "outbox",
        "task_events",
        "task_batches",
        "plan_versions",
        "subscriptions",
        "subscription_version_history",
        "subscription_version_changes",
        "idempotency_keys",
    ] {
        let n: i64 = sqlx::query_scalar(&format!("SELECT count(*) FROM {table}")).fetch_one(pool).await.unwrap();
        parts.push(format!("{table}={n}"));
    }
    let versions: Option<String> = sqlx::query_scalar(
        "SELECT string_agg(s.id || ':' || v.version_number || ':' || v.status, ',' ORDER BY s.id)
         FROM subscriptions s JOIN plan_versions v ON v.id = s.plan_version_id",
    )
    .fetch_one(pool)
    .await
    .unwrap();
    parts.push(versions.unwrap_or_default());
    parts.join(" ")
}

/// Pages through a preview (`path` answers the Stigg shape when `stigg`) and answers its first
/// page and every id on every page.
async fn preview_all(stack: &Stack, path: &str, body: &Value, stigg: bool) -> (Value, Vec<String>) {
    let mut ids = Vec::new();
    let mut first = None;
    let mut url = format!("{path}?limit=7");
    loop {
        let (status, answer) = if stigg {
            stack.api.call(Method::POST, &url, Some(body.clone())).await
        } else {
            let answer = crate::sequence::call(stack, Method::POST, &url, Some(body.clone()), &[]).await;
            (answer.status, answer.body)
        };
        assert_eq!(status, StatusCode::OK, "{answer}");
        let page = if stigg { answer["data"].clone() } else { answer };
        let field = if stigg { "subscriptionIds" } else { "billingScheduleIds" };
        ids.extend(page[field].as_array().unwrap().iter().map(|v| v.as_str().unwrap().to_owned()));
        let next = page["pagination"]["next"].as_str().map(str::to_owned);
        first.get_or_insert(page);
        match next {
            Some(next) => url = format!("{path}?limit=7&after={next}"),
            None => break,
        }
    }
    (first.unwrap(), ids)
}

async fn strings(pool: &PgPool, sql: &str) -> Vec<String> {
    sqlx::query_scalar(sql).fetch_all(pool).await.unwrap()
}

async fn buckets(pool: &PgPool, sql: &str) -> BTreeMap<String, i64> {
    sqlx::query_as::<_, (String, i64)>(sql).fetch_all(pool).await.unwrap().into_iter().collect()
}

fn object_counts(value: &Value) -> BTreeMap<String, i64> {
    value
        .as_object()
        .unwrap()
        .iter()
        .filter(|(_, n)| n.as_i64() != Some(0))
        .map(|(k, n)| (k.clone(), n.as_i64().unwrap()))
        .collect()
}

/// 40 subscriptions on plan `p`, some annual, some in trial, some canceled (not live), and a
/// draft version 2; plus another plan whose subscriptions must not count.
async fn varied_plan(stack: &Stack, plan: &str) {
    stack.api.plan_with_subscriptions(plan, 40).await;
    stack.api.plan_with_subscriptions(&format!("{plan}-other"), 5).await;
    for (sql, every) in [
        ("UPDATE subscriptions SET billing_period = 'ANNUALLY' WHERE id = $1", 3),
        ("UPDATE subscriptions SET status = 'IN_TRIAL' WHERE id = $1", 5),
        ("UPDATE subscriptions SET status = 'CANCELED' WHERE id = $1", 7),
    ] {
        for i in (0..40).step_by(every) {
            sqlx::query(sql).bind(format!("{plan}-s{i}")).execute(&stack.pool).await.unwrap();
        }
    }
    stack.api.draft(plan, json!({"displayName": "v2"})).await;
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn stigg_preview_of_all_customers_equals_what_the_publish_moves(pool: PgPool) {
    let stack = Stack::start(pool, 2, 7).await;
    varied_plan(&stack, "all").await;
    let body = json!({"migrationType": "ALL_CUSTOMERS"});
    let before = everything(&stack.pool).await;

    let (preview, mut ids) = preview_all(&stack, "/api/v1/plans/all/publish/preview", &body, true).await;

    assert_eq!(everything(&stack.pool).await, before, "the preview changed rows");
    // 40 minus the 6 canceled (0, 7, 14, 21, 28, 35)
    assert_eq!(preview["affectedSubscriptionsCount"], 34, "{preview}");
    assert_eq!(ids.len(), 34);

    let task_id = stack.api.publish("all", "ALL_CUSTOMERS").await;
    let task = stack.api.wait_task(&task_id).await;
    assert_eq!(task["status"], "COMPLETED", "{task}");

    let mut moved = strings(
        &stack.pool,
        &format!("SELECT subscription_id FROM subscription_version_history WHERE task_id = '{task_id}'"),
    )
    .await;
    moved.sort();
    ids.sort();
    assert_eq!(moved, ids, "the preview named exactly who moved");
    assert_eq!(task["counts"]["total"], preview["affectedSubscriptionsCount"]);
    assert_eq!(task["affectedCustomersCount"], preview["affectedCustomersCount"]);
    let moved_rows = format!(
        "FROM subscription_version_history h JOIN subscriptions s ON s.id = h.subscription_id
         WHERE h.task_id = '{task_id}'"
    );
    assert_eq!(
        buckets(&stack.pool, &format!("SELECT s.status, count(*) {moved_rows} GROUP BY 1")).await,
        object_counts(&preview["byStatus"])
    );
    assert_eq!(
        buckets(&stack.pool, &format!("SELECT s.billing_period, count(*) {moved_rows} GROUP BY 1")).await,
        object_counts(&preview["byBillingPeriod"])
    );
    assert_eq!(preview["byFromVersion"], json!([{"version": 1, "count": 34}]));
    // the preview said now: the moves happened on the day it named
    let day = preview["byDay"][0]["date"].as_str().unwrap().to_owned();
    assert_eq!(
        buckets(
            &stack.pool,
            &format!("SELECT (h.moved_at AT TIME ZONE 'UTC')::date::text, count(*) {moved_rows} GROUP BY 1")
        )
        .await,
        BTreeMap::from([(day, 34)])
    );
}

/// A flat fee: `monthly` usd a month, or `annual` eur a year.
fn flat_fee(monthly: i64, annual: i64) -> Value {
    json!({"pricingType": "PAID", "pricingModels": [{"billingModel": "FLAT_FEE", "pricePeriods": [
        {"billingPeriod": "MONTHLY", "price": {"amount": monthly, "currency": "usd"}},
        {"billingPeriod": "ANNUALLY", "price": {"amount": annual, "currency": "eur"}}]}]})
}

/// The revenue a publish's preview says would move is the revenue the publish moved: the
/// subscriptions it moved pay, on the version they reached, what the preview said they would
/// (the next preview's "before" is this one's "after"), counted from the rows it moved.
#[sqlx::test(migrator = "store::MIGRATOR")]
async fn stigg_preview_revenue_is_what_the_publish_moves(pool: PgPool) {
    let stack = Stack::start(pool, 2, 7).await;
    varied_plan(&stack, "paid").await;
    // version 1: 10 usd a month or 96 eur a year (8 a month); the draft 12 usd or 120 eur (10)
    for (version, charges) in [(1, flat_fee(10, 96)), (2, flat_fee(12, 120))] {
        sqlx::query("UPDATE plan_versions SET charges = $1 WHERE plan_id = 'paid' AND version_number = $2")
            .bind(charges)
            .bind(version)
            .execute(&stack.pool)
            .await
            .unwrap();
    }
    let body = json!({"migrationType": "ALL_CUSTOMERS"});
    let (preview, _) = preview_all(&stack, "/api/v1/plans/paid/publish/preview", &body, true).await;

    let task_id = stack.api.publish("paid", "ALL_CUSTOMERS").await;
    let task = stack.api.wait_task(&task_id).await;
    assert_eq!(task["status"], "COMPLETED", "{task}");
    let moved = buckets(
        &stack.pool,
        &format!(
            "SELECT s.billing_period, count(*) FROM subscription_version_history h
             JOIN subscriptions s ON s.id = h.subscription_id WHERE h.task_id = '{task_id}' GROUP BY 1"
        ),
    )
    .await;
    let (monthly, annual) = (moved["MONTHLY"], moved["ANNUALLY"]);
    let currency = |currency: &str, n: i64, before: i64, after: i64| {
        json!({"currency": currency, "subscriptionsCount": n, "mrrBefore": (n * before).to_string(),
               "mrrAfter": (n * after).to_string(), "mrrDelta": (n * (after - before)).to_string(),
               "upCount": n, "downCount": 0, "sameCount": 0, "withUnvaluedChargesCount": 0})
    };
    assert_eq!(
        preview["revenue"],
        json!({"byCurrency": [currency("eur", annual, 8, 10), currency("usd", monthly, 10, 12)],
               "unvaluedCount": 0, "unvaluedByReason": {}}),
    );

    // the same prices once more: those moved now pay what the first preview said they would
    stack.api.draft("paid", json!({"displayName": "v3"})).await;
    sqlx::query("UPDATE plan_versions SET charges = $1 WHERE plan_id = 'paid' AND version_number = 3")
        .bind(flat_fee(12, 120))
        .execute(&stack.pool)
        .await
        .unwrap();
    let (next, _) = preview_all(&stack, "/api/v1/plans/paid/publish/preview", &body, true).await;
    assert_eq!(next["revenue"]["byCurrency"].as_array().map(Vec::len), Some(2), "{next}");
    for (before, after) in next["revenue"]["byCurrency"]
        .as_array()
        .unwrap()
        .iter()
        .zip(preview["revenue"]["byCurrency"].as_array().unwrap())
    {
        assert_eq!(before["currency"], after["currency"]);
        assert_eq!(before["mrrBefore"], after["mrrAfter"], "{next}");
        assert_eq!(before["sameCount"], after["subscriptionsCount"]);
    }
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn stigg_preview_of_new_customers_equals_what_the_publish_moves(pool: PgPool) {
    let stack = Stack::start(pool, 1, 7).await;
    varied_plan(&stack, "new").await;
    let body = json!({"migrationType": "NEW_CUSTOMERS"});
    let before = everything(&stack.pool).await;

    let (preview, ids) = preview_all(&stack, "/api/v1/plans/new/publish/preview", &body, true).await;

    assert_eq!(everything(&stack.pool).await, before, "the preview changed rows");
    assert_eq!(preview["affectedSubscriptionsCount"], 0, "{preview}");
    assert!(ids.is_empty());
    let task_id = stack.api.publish("new", "NEW_CUSTOMERS").await;
    let task = stack.api.wait_task(&task_id).await;
    assert_eq!(task["status"], "COMPLETED", "{task}");
    assert_eq!(task["counts"]["processed"], 0);
    assert_eq!(stack.scalar("SELECT count(*) FROM subscription_version_history").await, 0);
    assert_eq!(
        stack
            .scalar(
                "SELECT count(*) FROM subscriptions s JOIN plan_versions v ON v.id = s.plan_version_id
                 WHERE v.version_number = 2"
            )
            .await,
        0
    );
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn sequence_preview_of_next_billing_date_equals_what_the_update_schedules_and_moves(pool: PgPool) {
    let stack = Stack::start(pool, 1, 100).await;
    let _scheduler = scheduler(&stack, "s1");
    let now = Utc::now();
    // anchors spread over the past months, so billing dates fall on many days, and three whose
    // billing date is a few seconds away
    let mut starts: Vec<DateTime<Utc>> = (1..=60).map(|i| now - TimeDelta::hours(i * 11 + 3)).collect();
    starts.extend([billing_in(Duration::from_secs(12)); 3]);
    live_plan(&stack, "nbd", &starts).await;
    sqlx::query("UPDATE subscriptions SET status = 'CANCELED' WHERE id IN ('nbd-s0', 'nbd-s1')")
        .execute(&stack.pool)
        .await
        .unwrap();
    let body = plan_body("nbd", json!({"versionChangeBehaviour": "NEXT_BILLING_DATE"}));
    let before = everything(&stack.pool).await;

    let (preview, mut ids) = preview_all(&stack, "/plans/nbd/preview", &body, false).await;

    assert_eq!(everything(&stack.pool).await, before, "the preview changed rows");
    assert_eq!(preview["affectedSchedulesCount"], 61, "{preview}");
    assert_eq!(preview["targetVersion"], 2);
    assert!(preview["byDay"].as_array().unwrap().len() > 10, "{preview}");

    let put = ok(&stack, Method::PUT, "/plans/nbd", body).await;
    assert_eq!(put.body["version"], 2);
    let task_id = put.task.expect("X-Task-Id");
    wait_planned(&stack.pool, &task_id).await;

    let scheduled = format!("FROM subscription_version_changes WHERE task_id = '{task_id}'");
    let mut planned = strings(&stack.pool, &format!("SELECT subscription_id {scheduled}")).await;
    planned.sort();
    ids.sort();
    assert_eq!(planned, ids, "the preview named exactly who the update scheduled");
    let by_day: BTreeMap<String, i64> = preview["byDay"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| (b["date"].as_str().unwrap().to_owned(), b["count"].as_i64().unwrap()))
        .collect();
    assert_eq!(
        buckets(
            &stack.pool,
            &format!("SELECT (apply_at AT TIME ZONE 'UTC')::date::text, count(*) {scheduled} GROUP BY 1")
        )
        .await,
        by_day,
        "each schedule moves on the day the preview said"
    );
    let first: DateTime<Utc> = preview["firstMoveAt"].as_str().unwrap().parse().unwrap();
    let earliest: DateTime<Utc> =
        sqlx::query_scalar(&format!("SELECT min(apply_at) {scheduled}")).fetch_one(&stack.pool).await.unwrap();
    assert_eq!(first, earliest);
    // the three due soonest move at their billing date: one history row each, nobody else
    wait_until("the due moves", Duration::from_secs(40), async || {
        stack.scalar("SELECT count(*) FROM subscription_version_history").await == 3
    })
    .await;
    let mut moved = strings(&stack.pool, "SELECT subscription_id FROM subscription_version_history").await;
    moved.sort();
    assert_eq!(moved, ["nbd-s60", "nbd-s61", "nbd-s62"]);
}

/// The preview's `wouldFail` is the worker's verdict: each draft is previewed, then published
/// with real workers, and a draft the preview said would fail ends FAILED with the code and
/// message it said (nobody moved), while one it said would go through completes.
#[sqlx::test(migrator = "store::MIGRATOR")]
async fn stigg_preview_would_fail_is_what_the_worker_then_does(pool: PgPool) {
    let stack = Stack::start(pool, 1, 100).await;
    stack.api.plan_with_subscriptions("child", 3).await;
    // a plan and an add-on that exist only as drafts
    stack.api.post("/api/v1/plans", json!({"id": "base", "displayName": "base", "productId": "product"})).await;
    stack.api.post("/api/v1/addons", json!({"id": "addon-x", "displayName": "addon-x", "productId": "product"})).await;
    stack.api.draft("child", json!({"parentPlanId": "base"})).await;
    stack.api.plan_with_subscriptions("main", 2).await;
    stack.api.draft("main", json!({"compatibleAddonIds": ["addon-x"]})).await;
    // a base plan and an add-on that are published (version 1 of each)
    stack.api.plan_with_subscriptions("fine", 2).await;
    let live = json!({"id": "addon-live", "displayName": "addon-live", "productId": "product", "status": "PUBLISHED"});
    stack.api.post("/api/v1/addons", live).await;
    stack.api.draft("fine", json!({"parentPlanId": "main", "compatibleAddonIds": ["addon-live"]})).await;

    for (plan, code, message) in [
        ("child", Some("PlanCannotBePublishWhenBasePlanIsDraft"), "base plan `base` is still a draft"),
        ("main", Some("PlanCannotBePublishWhenCompatibleAddonIsDraft"), "compatible add-on `addon-x` is still a draft"),
        ("fine", None, ""),
    ] {
        let before = everything(&stack.pool).await;
        let (preview, _) = preview_all(
            &stack,
            &format!("/api/v1/plans/{plan}/publish/preview"),
            &json!({"migrationType": "ALL_CUSTOMERS"}),
            true,
        )
        .await;
        assert_eq!(everything(&stack.pool).await, before, "the preview changed rows");

        let task_id = stack.api.publish(plan, "ALL_CUSTOMERS").await;
        let task = stack.api.wait_task(&task_id).await;
        let moved = stack
            .scalar(&format!("SELECT count(*) FROM subscription_version_history WHERE task_id = '{task_id}'"))
            .await;
        match code {
            Some(code) => {
                assert_eq!(preview["wouldFail"], json!({"code": code, "message": message}), "{preview}");
                assert_eq!(task["status"], "FAILED", "{task}");
                assert_eq!(task["error"]["code"], preview["wouldFail"]["code"], "{task}");
                assert_eq!(task["error"]["message"], preview["wouldFail"]["message"], "{task}");
                assert_eq!(moved, 0);
            }
            None => {
                assert_eq!(preview.get("wouldFail"), Some(&Value::Null), "{preview}");
                assert_eq!(task["status"], "COMPLETED", "{task}");
                assert_eq!(json!(moved), preview["affectedSubscriptionsCount"]);
            }
        }
    }
}

/// A Sequence update publishes in its request and its migration's planning refuses nothing of
/// the catalog: its preview says `wouldFail: null`, and the update's task does complete — even
/// when the plan's `parentId` names a plan that is still a draft.
#[sqlx::test(migrator = "store::MIGRATOR")]
async fn sequence_preview_would_fail_is_what_the_update_then_does(pool: PgPool) {
    let stack = Stack::start(pool, 1, 100).await;
    let past = Utc::now() - TimeDelta::days(40);
    live_plan(&stack, "seq", &[past, past, past]).await;
    stack.api.call(Method::POST, "/api/v1/products", Some(json!({"id": "product", "displayName": "Product"}))).await;
    stack.api.post("/api/v1/plans", json!({"id": "base", "displayName": "Base", "productId": "product"})).await;
    let body = plan_body("seq", json!({"parentId": "base", "versionChangeBehaviour": "IMMEDIATE"}));

    let (preview, _) = preview_all(&stack, "/plans/seq/preview", &body, false).await;
    assert_eq!(preview.get("wouldFail"), Some(&Value::Null), "{preview}");
    assert_eq!(preview["affectedSchedulesCount"], 3, "{preview}");

    let put = ok(&stack, Method::PUT, "/plans/seq", body).await;
    let task = stack.api.wait_task(&put.task.expect("X-Task-Id")).await;
    assert_eq!(task["status"], "COMPLETED", "{task}");
    assert_eq!(task["counts"]["processed"], 3, "{task}");
}
