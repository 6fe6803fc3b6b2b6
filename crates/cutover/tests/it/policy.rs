//! A price change under a migration policy, end to end through HTTP with the real api and
//! worker binaries: a 5,000-subscription plan whose policy leaves two statuses, named
//! customers, a metadata match and imminent renewals alone, gives 30 days' notice and requires
//! approval. The preview's counts equal what the task then does; the requester cannot approve
//! its own task and another admin can; excluded subscriptions never move; every other one is
//! scheduled at its first billing date at least 30 days after acceptance, announced once in
//! `subscriptions.migration_scheduled`, and moves when due. A rejected task leaves its draft a
//! draft.

use crate::client::ApiClient;
use crate::harness::{wait_for, Deployment};
use axum::extract::State;
use chrono::{DateTime, Duration as Days, Utc};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

type Inbox = Arc<Mutex<Vec<Value>>>;

async fn receive(State(inbox): State<Inbox>, body: String) -> StatusCode {
    if let Ok(event) = serde_json::from_str::<Value>(&body) {
        inbox.lock().unwrap().push(event);
    }
    StatusCode::OK
}

async fn start_receiver(inbox: Inbox) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let app = axum::Router::new().route("/hooks", axum::routing::post(receive)).with_state(inbox);
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{address}/hooks")
}

/// The subscription ids of every received event of `kind`, in arrival order.
fn announced(inbox: &Inbox, kind: &str) -> Vec<String> {
    inbox
        .lock()
        .unwrap()
        .iter()
        .filter(|e| e["type"] == kind)
        .flat_map(|e| e["data"]["subscriptions"].as_array().cloned().unwrap_or_default())
        .map(|s| s["subscriptionId"].as_str().unwrap().to_owned())
        .collect()
}

fn events_of(inbox: &Inbox, kind: &str) -> Vec<Value> {
    inbox.lock().unwrap().iter().filter(|e| e["type"] == kind).cloned().collect()
}

const N: usize = 5000;

/// Who is who among the plan's subscriptions `gold-s<i>`.
fn fixture(i: usize) -> (&'static str, &'static str) {
    match i {
        0..300 => ("status", "IN_TRIAL"),
        300..500 => ("status", "PAYMENT_PENDING"),
        500..505 => ("customer", "ACTIVE"),
        505..605 => ("metadata", "ACTIVE"),
        605..655 => ("renewingWithin", "ACTIVE"),
        _ => ("moves", "ACTIVE"),
    }
}

#[tokio::test]
async fn a_policy_with_exclusions_notice_and_approval_does_what_its_preview_said() {
    let mut deployment = Deployment::with_env(&[("CUTOVER_SCHEDULER_TICK_MS", "100")]).await;
    let api = deployment.api().await;
    deployment.start_worker("w1");
    let maker = ApiClient::new(api.base.clone(), deployment.create_key("admin").await);
    let checker = ApiClient::new(api.base.clone(), deployment.create_key("admin").await);

    // 5,000 subscriptions: monthly ones started 10 days ago (next billing dates in ~20 and ~51
    // days: the notice lands them on the second), annual ones started 100 days ago, and 50
    // that renew tomorrow
    api.plan_with_subscriptions("gold", 0).await;
    let customers: Vec<Value> = (0..N)
        .map(|i| {
            let id = if (500..505).contains(&i) { format!("vip-{i}") } else { format!("gold-c{i}") };
            json!({"id": id, "email": null, "name": null})
        })
        .collect();
    api.post("/api/v1/customers/import", json!({ "customers": customers })).await;
    let now = Utc::now();
    // monthly, renewing within the next three days whatever the month: an anchor a month and
    // a day back would clamp at a month's end (Oct 31 renews Nov 30, today, then Dec 31)
    let soon = now + Days::minutes(10);
    let renewing = (1..=3)
        .filter_map(|k| (now + Days::days(k)).checked_sub_months(chrono::Months::new(1)))
        .find(|start| domain::BillingPeriod::Monthly.next_billing_date(*start, soon) <= now + Days::days(3))
        .expect("one of the next three days is a monthly billing date of some anchor");
    let subscriptions: Vec<Value> = (0..N)
        .map(|i| {
            let customer = if (500..505).contains(&i) { format!("vip-{i}") } else { format!("gold-c{i}") };
            let (kind, _) = fixture(i);
            let annual = kind == "moves" && i % 5 == 0;
            let start = match kind {
                "renewingWithin" => renewing,
                _ if annual => now - Days::days(100),
                _ => now - Days::days(10),
            };
            let metadata = if kind == "metadata" { json!({"grandfathered": "true"}) } else { json!({"tier": "std"}) };
            json!({"id": format!("gold-s{i}"), "customerId": customer, "planId": "gold",
                   "billingPeriod": if annual { "ANNUALLY" } else { "MONTHLY" },
                   "startDate": start, "metadata": metadata})
        })
        .collect();
    let imported = api.post("/api/v1/subscriptions/import", json!({ "subscriptions": subscriptions })).await;
    let done = api.wait_task_within(imported["data"]["taskId"].as_str().unwrap(), Duration::from_secs(120)).await;
    assert_eq!(done["status"], "COMPLETED", "{done}");
    // statuses are not part of Stigg's import: set them as billing would have
    for (status, range) in [("IN_TRIAL", "0 AND 299"), ("PAYMENT_PENDING", "300 AND 499")] {
        sqlx::query(&format!(
            "UPDATE subscriptions SET status = '{status}'
             WHERE plan_id = 'gold' AND substr(id, 7)::int BETWEEN {range}"
        ))
        .execute(&deployment.pool)
        .await
        .unwrap();
    }
    let vips: Vec<String> = (500..505).map(|i| format!("vip-{i}")).collect();
    let policy = json!({
        "exclude": {"statuses": ["IN_TRIAL", "PAYMENT_PENDING"], "customerIds": vips,
                    "metadata": {"grandfathered": "true"}, "renewingWithin": "P3D"},
        "noticePeriod": "P30D",
        "requireApproval": true
    });
    let (status, body) = maker.call(Method::PUT, "/api/v1/plans/gold/migration-policy", Some(policy)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    api.draft("gold", json!({"displayName": "Gold (2027)"})).await;
    // version 1: 10 usd a month or 96 eur a year (8 a month); the draft 12 usd or 120 eur (10)
    let fee = |monthly: i64, annual: i64| {
        json!({"pricingType": "PAID", "pricingModels": [{"billingModel": "FLAT_FEE", "pricePeriods": [
            {"billingPeriod": "MONTHLY", "price": {"amount": monthly, "currency": "usd"}},
            {"billingPeriod": "ANNUALLY", "price": {"amount": annual, "currency": "eur"}}]}]})
    };
    for (version, charges) in [(1, fee(10, 96)), (2, fee(12, 120))] {
        sqlx::query("UPDATE plan_versions SET charges = $1 WHERE plan_id = 'gold' AND version_number = $2")
            .bind(charges)
            .bind(version)
            .execute(&deployment.pool)
            .await
            .unwrap();
    }

    let inbox = Inbox::default();
    let url = start_receiver(inbox.clone()).await;
    let events =
        ["subscriptions.migration_scheduled", "subscriptions.migrated", "task.awaiting_approval", "task.approved"];
    maker.post("/api/v1/webhooks", json!({ "url": url, "events": events })).await;

    // the preview
    let preview = maker.post("/api/v1/plans/gold/publish/preview", json!({"migrationType": "ALL_CUSTOMERS"})).await;
    let preview = &preview["data"];
    let expected_moves = (0..N).filter(|i| fixture(*i).0 == "moves").count() as i64;
    assert_eq!(preview["affectedSubscriptionsCount"], expected_moves, "{preview}");
    let by_reason = json!({"status": 500, "customer": 5, "metadata": 100, "renewingWithin": 50});
    assert_eq!(preview["excludedByReason"], by_reason);
    assert_eq!(preview["excludedCount"], 655);
    assert_eq!((preview["noticePeriod"].clone(), preview["requiresApproval"].clone()), (json!("P30D"), json!(true)));

    // the publish waits for approval: nothing published, nobody moved
    let task = maker.post("/api/v1/plans/gold/publish", json!({"migrationType": "ALL_CUSTOMERS"})).await;
    let task = task["data"]["taskId"].as_str().unwrap().to_owned();
    wait_for("the wait for approval to be announced", Duration::from_secs(30), || {
        let inbox = inbox.clone();
        async move { !events_of(&inbox, "task.awaiting_approval").is_empty() }
    })
    .await;
    let waiting = api.task(&task).await;
    assert_eq!((waiting["status"].clone(), waiting["approval"]["state"].clone()), (json!("PENDING"), json!("PENDING")));
    assert_eq!(
        deployment.scalar("SELECT count(*) FROM plan_versions WHERE plan_id = 'gold' AND status = 'DRAFT'").await,
        1
    );

    let approve = format!("/api/v1/tasks/{task}/approve");
    let (status, body) = maker.call(Method::POST, &approve, None).await;
    assert_eq!((status, body["code"].clone()), (StatusCode::FORBIDDEN, json!("AccessDeniedError")), "{body}");
    let (status, body) = checker.call(Method::POST, &approve, None).await;
    assert_eq!(status, StatusCode::OK, "{body}");

    // planned: every move scheduled after the notice, the excluded counted and left alone
    wait_for("the task to be planned", Duration::from_secs(60), || {
        let api = api.clone();
        let task = task.clone();
        async move { api.task(&task).await["status"] == "IN_PROGRESS" }
    })
    .await;
    let planned = api.task(&task).await;
    assert_eq!(planned["counts"]["total"], expected_moves, "{planned}");
    assert_eq!(planned["counts"]["excluded"], 655);
    assert_eq!(planned["excludedByReason"], by_reason);
    let accepted: DateTime<Utc> = planned["createdAt"].as_str().unwrap().parse().unwrap();
    let schedule: Vec<(String, DateTime<Utc>, DateTime<Utc>, String)> = sqlx::query_as(
        "SELECT c.subscription_id, c.apply_at, s.start_date, s.billing_period
         FROM subscription_version_changes c JOIN subscriptions s ON s.id = c.subscription_id
         WHERE c.task_id = $1::uuid AND c.status = 'SCHEDULED'",
    )
    .bind(&task)
    .fetch_all(&deployment.pool)
    .await
    .unwrap();
    assert_eq!(schedule.len() as i64, expected_moves);
    let not_before = accepted + Days::days(30);
    for (id, apply_at, start, period) in &schedule {
        let i: usize = id.trim_start_matches("gold-s").parse().unwrap();
        assert_eq!(fixture(i).0, "moves", "{id} is excluded but was scheduled");
        let months = if period == "ANNUALLY" { 12 } else { 1 };
        // a billing date of the subscription: its start plus whole periods …
        let periods = (1..40).find(|k| start.checked_add_months(chrono::Months::new(k * months)) == Some(*apply_at));
        assert!(periods.is_some(), "{id}: {apply_at} is not a billing date of a subscription started {start}");
        // … the first one on or after the end of the notice
        assert!(*apply_at >= not_before, "{id} moves at {apply_at}, before {not_before}");
        let previous = apply_at.checked_sub_months(chrono::Months::new(months)).unwrap();
        assert!(previous < not_before, "{id}: {previous} was already after the notice");
    }

    // each scheduled subscription announced exactly once, with its date and versions
    wait_for("the scheduled moves to be announced", Duration::from_secs(60), || {
        let inbox = inbox.clone();
        async move { announced(&inbox, "subscriptions.migration_scheduled").len() as i64 >= expected_moves }
    })
    .await;
    let scheduled = announced(&inbox, "subscriptions.migration_scheduled");
    let mut once = scheduled.clone();
    once.sort();
    once.dedup();
    assert_eq!((scheduled.len(), once.len()), (expected_moves as usize, expected_moves as usize));
    let scheduled_events = events_of(&inbox, "subscriptions.migration_scheduled");
    assert_eq!(scheduled_events.len(), (expected_moves as usize).div_ceil(1000));
    let first = &scheduled_events[0]["data"]["subscriptions"][0];
    let dates: BTreeMap<&str, DateTime<Utc>> = schedule.iter().map(|(id, at, ..)| (id.as_str(), *at)).collect();
    let effective: DateTime<Utc> = first["effectiveDate"].as_str().unwrap().parse().unwrap();
    assert_eq!(Some(&effective), dates.get(first["subscriptionId"].as_str().unwrap()));
    assert_eq!((first["fromVersion"].clone(), first["toVersion"].clone()), (json!(1), json!(2)));
    assert_eq!(events_of(&inbox, "task.approved").len(), 1);

    // the notice passes (the moves are made due), and the scheduler moves exactly those
    sqlx::query(
        "UPDATE subscription_version_changes SET apply_at = now() - interval '1 minute' WHERE task_id = $1::uuid",
    )
    .bind(&task)
    .execute(&deployment.pool)
    .await
    .unwrap();
    let finished = api.wait_task_within(&task, Duration::from_secs(120)).await;
    assert_eq!(finished["status"], "COMPLETED", "{finished}");
    assert_eq!(finished["counts"]["processed"], expected_moves);
    let history =
        deployment.scalar(&format!("SELECT count(*) FROM subscription_version_history WHERE task_id = '{task}'")).await;
    assert_eq!(history, expected_moves);
    let on_old: Vec<String> = sqlx::query_scalar(
        "SELECT s.id FROM subscriptions s JOIN plan_versions v ON v.id = s.plan_version_id
         WHERE s.plan_id = 'gold' AND v.version_number = 1 ORDER BY s.id",
    )
    .fetch_all(&deployment.pool)
    .await
    .unwrap();
    assert_eq!(on_old.len(), 655, "the excluded stay where they are");
    assert!(on_old.iter().all(|id| fixture(id.trim_start_matches("gold-s").parse().unwrap()).0 != "moves"));
    wait_for("every move to be announced", Duration::from_secs(60), || {
        let inbox = inbox.clone();
        async move { announced(&inbox, "subscriptions.migrated").len() as i64 >= expected_moves }
    })
    .await;
    // the revenue the preview said would move is the revenue of those the task moved
    let moved_by_period: Vec<(String, i64)> = sqlx::query_as(
        "SELECT s.billing_period, count(*) FROM subscription_version_history h
         JOIN subscriptions s ON s.id = h.subscription_id WHERE h.task_id = $1::uuid GROUP BY 1 ORDER BY 1",
    )
    .bind(&task)
    .fetch_all(&deployment.pool)
    .await
    .unwrap();
    let moved: BTreeMap<String, i64> = moved_by_period.into_iter().collect();
    let delta: BTreeMap<String, String> = preview["revenue"]["byCurrency"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (c["currency"].as_str().unwrap().to_owned(), c["mrrDelta"].as_str().unwrap().to_owned()))
        .collect();
    assert_eq!(delta["usd"], (moved["MONTHLY"] * 2).to_string(), "{}", preview["revenue"]);
    assert_eq!(delta["eur"], (moved["ANNUALLY"] * 2).to_string(), "{}", preview["revenue"]);

    let mut migrated = announced(&inbox, "subscriptions.migrated");
    migrated.sort();
    assert_eq!(migrated, once, "each moved subscription announced once as migrated");

    // a rejected task publishes nothing: the next draft stays a draft
    api.draft("gold", json!({"displayName": "Gold (2028)"})).await;
    let rejected = maker.post("/api/v1/plans/gold/publish", json!({"migrationType": "ALL_CUSTOMERS"})).await;
    let rejected = rejected["data"]["taskId"].as_str().unwrap().to_owned();
    let (status, body) = checker.call(Method::POST, &format!("/api/v1/tasks/{rejected}/reject"), None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(api.task(&rejected).await["status"], "CANCELED");
    let drafts =
        deployment.scalar("SELECT count(*) FROM plan_versions WHERE plan_id = 'gold' AND status = 'DRAFT'").await;
    assert_eq!(drafts, 1, "the draft stays a draft");
}

async fn sign_in(browser: &crate::browser::Browser, base: &str, key: &str) {
    browser.goto(&format!("{base}/dashboard")).await;
    browser.wait("#key", Duration::from_secs(10)).await;
    browser.type_into("#key", key).await;
    browser.click("#sign-in-button").await;
    browser.wait("#nav:not([hidden])", Duration::from_secs(10)).await;
}

/// The dashboard shows a task waiting for approval, with its policy and approval; the
/// requester's session offers no button, another admin's approves it behind a confirmation,
/// and the page follows the task to COMPLETED, with no Content-Security-Policy violation.
#[tokio::test]
async fn the_dashboard_shows_the_wait_and_lets_another_admin_approve() {
    let mut deployment = Deployment::new().await;
    let api = deployment.api().await;
    deployment.start_worker("w1");
    let maker_key = deployment.create_key("admin").await;
    let checker_key = deployment.create_key("admin").await;
    let maker = ApiClient::new(api.base.clone(), maker_key.clone());
    api.plan_with_subscriptions("silver", 20).await;
    sqlx::query("UPDATE subscriptions SET status = 'IN_TRIAL' WHERE id IN ('silver-s0', 'silver-s1')")
        .execute(&deployment.pool)
        .await
        .unwrap();
    let policy = json!({"exclude": {"statuses": ["IN_TRIAL"]}, "requireApproval": true});
    let (status, body) = maker.call(Method::PUT, "/api/v1/plans/silver/migration-policy", Some(policy)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    api.draft("silver", json!({"displayName": "Silver (2027)"})).await;
    let task = maker.post("/api/v1/plans/silver/publish", json!({"migrationType": "ALL_CUSTOMERS"})).await;
    let task = task["data"]["taskId"].as_str().unwrap().to_owned();

    let browser = crate::browser::Browser::start().await;
    sign_in(&browser, &api.base, &maker_key).await;
    browser.goto(&format!("{}/dashboard#/task/{task}", api.base)).await;
    browser.wait_text("#task-approval", Duration::from_secs(10), |t| t.starts_with("PENDING")).await;
    browser.wait("#approval-wait", Duration::from_secs(10)).await;
    assert_eq!(browser.count("button[data-act='approve']").await, 0, "the requester is offered its own approval");
    assert!(browser.text("#task-policy").await.contains("approval required"));

    browser.click("#sign-out").await;
    browser.wait("#nav[hidden]", Duration::from_secs(10)).await;
    sign_in(&browser, &api.base, &checker_key).await;
    browser.goto(&format!("{}/dashboard#/task/{task}", api.base)).await;
    browser.wait("button[data-act='approve']", Duration::from_secs(10)).await;
    browser.screenshot("approval").await;
    browser.click("button[data-act='approve']").await;
    assert!(browser.alert_text().await.contains("Approve task"));
    browser.accept_alert().await;
    browser.wait_text("#task-status", Duration::from_secs(60), |t| t == "COMPLETED").await;
    browser.wait_text("#task-approval", Duration::from_secs(10), |t| t.starts_with("APPROVED")).await;
    browser.wait_text("#task-excluded", Duration::from_secs(10), |t| t.starts_with("2 ")).await;
    let done = api.task(&task).await;
    assert_eq!((done["counts"]["processed"].clone(), done["counts"]["excluded"].clone()), (json!(18), json!(2)));
    let violations: Vec<String> =
        browser.log().await.into_iter().filter(|l| l.contains("Content Security Policy")).collect();
    assert!(violations.is_empty(), "{violations:#?}");
}

/// The Sequence dialect under a policy: an `IMMEDIATE` update of a plan whose policy excludes
/// a customer and gives 20 days' notice publishes its version at once (the contract answers
/// it), schedules every other schedule at its first billing date on or after the notice's end,
/// and leaves the excluded one alone; with approval, the migration waits for another admin.
#[sqlx::test(migrator = "store::MIGRATOR")]
async fn a_sequence_update_obeys_the_policy_of_its_plan(pool: sqlx::PgPool) {
    use crate::sequence::{live_plan, ok, plan_body, wait_planned};
    let stack = crate::stack::Stack::start(pool, 1, 50).await;
    // started 5 days ago: billing dates in ~25 and ~56 days; the notice lands them on the first
    live_plan(&stack, "seq", &[Utc::now() - Days::days(5); 6]).await;
    let admin = |key: String| ApiClient::new(stack.api.base.clone(), key);
    let create = |pool: sqlx::PgPool| async move {
        store::api_keys::create_key(&pool, "stack", store::api_keys::Scope::Admin, None).await.unwrap().secret
    };
    let (maker, checker) = (admin(create(stack.pool.clone()).await), admin(create(stack.pool.clone()).await));
    let policy = json!({"exclude": {"customerIds": ["seq-c0"]}, "noticePeriod": "P20D", "requireApproval": true});
    let (status, body) = maker.call(Method::PUT, "/api/v1/plans/seq/migration-policy", Some(policy)).await;
    assert_eq!(status, StatusCode::OK, "{body}");

    let put =
        ok(&stack, Method::PUT, "/plans/seq", plan_body("seq", json!({"versionChangeBehaviour": "IMMEDIATE"}))).await;
    assert_eq!(put.body["version"], 2, "the version is published as the contract says");
    let task = put.task.expect("X-Task-Id");
    let waiting = stack.api.task(&task).await;
    assert_eq!(waiting["approval"]["state"], "PENDING", "{waiting}");
    let (status, _) = checker.call(Method::POST, &format!("/api/v1/tasks/{task}/approve"), None).await;
    assert_eq!(status, StatusCode::OK);
    wait_planned(&stack.pool, &task).await;

    let planned = stack.api.task(&task).await;
    assert_eq!((planned["counts"]["total"].clone(), planned["counts"]["excluded"].clone()), (json!(5), json!(1)));
    let accepted: DateTime<Utc> = planned["createdAt"].as_str().unwrap().parse().unwrap();
    let moves: Vec<(String, DateTime<Utc>, DateTime<Utc>)> = sqlx::query_as(
        "SELECT c.subscription_id, c.apply_at, s.start_date FROM subscription_version_changes c
         JOIN subscriptions s ON s.id = c.subscription_id WHERE c.task_id = $1::uuid AND c.status = 'SCHEDULED'",
    )
    .bind(&task)
    .fetch_all(&stack.pool)
    .await
    .unwrap();
    assert_eq!(moves.len(), 5);
    for (id, apply_at, start) in &moves {
        assert_ne!(id, "seq-s0", "the excluded customer's schedule was scheduled");
        assert!(*apply_at >= accepted + Days::days(20), "{id} moves at {apply_at}");
        assert_eq!(Some(*apply_at), start.checked_add_months(chrono::Months::new(1)), "{id}");
    }
    // the schedule shows the move it waits for
    let (_, schedule) = stack.api.call(Method::GET, "/billing-schedules/seq-s1", None).await;
    assert_eq!(schedule["scheduledVersionChange"]["status"], "SCHEDULED", "{schedule}");
    let (_, excluded) = stack.api.call(Method::GET, "/billing-schedules/seq-s0", None).await;
    assert!(excluded["scheduledVersionChange"].is_null(), "{excluded}");
}

/// An add-on publish under the add-on's migration policy: the preview counts whom it leaves
/// alone, the task waits for another admin, then moves every holder but the excluded ones, and
/// a policy with a notice (which an add-on's immediate moves cannot honour) is refused.
#[sqlx::test(migrator = "store::MIGRATOR")]
async fn an_addon_publish_obeys_the_policy_of_its_addon(pool: sqlx::PgPool) {
    let stack = crate::stack::Stack::start(pool, 1, 7).await;
    stack.api.plan_with_subscriptions("main", 0).await;
    let seats = json!({"id": "seats", "displayName": "Seats", "productId": "product", "status": "PUBLISHED"});
    stack.api.post("/api/v1/addons", seats).await;
    let customers: Vec<Value> = (0..20).map(|i| json!({"id": format!("c{i}")})).collect();
    stack.api.post("/api/v1/customers/import", json!({ "customers": customers })).await;
    let subscriptions: Vec<Value> = (0..20)
        .map(|i| {
            json!({"id": format!("s{i}"), "customerId": format!("c{i}"), "planId": "main",
                   "metadata": {"tier": if i < 3 { "legacy" } else { "std" }},
                   "addons": [{"id": "seats", "quantity": 1}]})
        })
        .collect();
    let import = stack.api.post("/api/v1/subscriptions/import", json!({ "subscriptions": subscriptions })).await;
    assert_eq!(stack.api.wait_task(import["data"]["taskId"].as_str().unwrap()).await["status"], "COMPLETED");
    let create = |pool: sqlx::PgPool| async move {
        store::api_keys::create_key(&pool, "stack", store::api_keys::Scope::Admin, None).await.unwrap().secret
    };
    let maker = ApiClient::new(stack.api.base.clone(), create(stack.pool.clone()).await);
    let checker = ApiClient::new(stack.api.base.clone(), create(stack.pool.clone()).await);
    let path = "/api/v1/addons/seats/migration-policy";

    // an unknown add-on is 404; a notice is stored but refused by the publish
    let (status, body) = maker.call(Method::PUT, "/api/v1/addons/nope/migration-policy", Some(json!({}))).await;
    assert_eq!((status, body["code"].clone()), (StatusCode::NOT_FOUND, json!("AddonNotFound")));
    let (status, _) = maker.call(Method::PUT, path, Some(json!({"noticePeriod": "P7D"}))).await;
    assert_eq!(status, StatusCode::OK);
    stack.api.post("/api/v1/addons/seats/draft", json!({})).await;
    let publish = json!({"migrationType": "ALL_CUSTOMERS"});
    let (status, body) = maker.call(Method::POST, "/api/v1/addons/seats/publish", Some(publish.clone())).await;
    assert_eq!((status, body["code"].clone()), (StatusCode::BAD_REQUEST, json!("BadUserInput")), "{body}");

    let policy = json!({"exclude": {"customerIds": ["c10"], "metadata": {"tier": "legacy"}}, "requireApproval": true});
    let (status, body) = maker.call(Method::PUT, path, Some(policy)).await;
    assert_eq!((status, body["data"]["source"].clone()), (StatusCode::OK, json!("ADDON")), "{body}");
    let preview = maker.post("/api/v1/addons/seats/publish/preview", publish.clone()).await;
    assert_eq!(preview["data"]["affectedSubscriptionsCount"], 16, "{preview}");
    assert_eq!(
        preview["data"]["excludedByReason"],
        json!({"status": 0, "customer": 1, "metadata": 3, "renewingWithin": 0})
    );
    assert_eq!(preview["data"]["requiresApproval"], true);

    let task = maker.post("/api/v1/addons/seats/publish", publish).await;
    let task = task["data"]["taskId"].as_str().unwrap().to_owned();
    let (status, _) = maker.call(Method::POST, &format!("/api/v1/tasks/{task}/approve"), None).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, body) = checker.call(Method::POST, &format!("/api/v1/tasks/{task}/approve"), None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let done = stack.api.wait_task(&task).await;
    assert_eq!(done["status"], "COMPLETED", "{done}");
    assert_eq!((done["counts"]["processed"].clone(), done["counts"]["excluded"].clone()), (json!(16), json!(4)));
    let on_old: Vec<String> = sqlx::query_scalar(
        "SELECT sa.subscription_id FROM subscription_addons sa JOIN addon_versions v ON v.id = sa.addon_version_id
         WHERE v.version_number = 1 ORDER BY 1",
    )
    .fetch_all(&stack.pool)
    .await
    .unwrap();
    assert_eq!(on_old, ["s0", "s1", "s10", "s2"], "the excluded holders keep their version");
}
