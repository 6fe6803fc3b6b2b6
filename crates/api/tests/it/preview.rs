//! The previews (`POST /api/v1/plans/{id}/publish/preview`, `POST /plans/{planId}/preview`):
//! they refuse exactly what the request they preview refuses, with the same status and code,
//! change nothing, page through who moves, and answer a read-only key. No worker runs here;
//! that the counts equal what the migration then moves is tested end to end in
//! `crates/cutover/tests/it/preview.rs`.

use crate::harness::{assert_error, Answer, TestApp};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use sqlx::PgPool;

impl TestApp {
    async fn preview(&self, plan: &str, body: &Value) -> Answer {
        self.post(&format!("/api/v1/plans/{plan}/publish/preview"), body).await
    }

    async fn preview_raw(&self, plan: &str, body: &'static str) -> Answer {
        Self::send(
            self.request(Method::POST, &format!("/api/v1/plans/{plan}/publish/preview"))
                .header("Content-Type", "application/json")
                .body(body),
        )
        .await
    }

    /// Everything a preview must leave alone, counted, plus who is on which version.
    async fn everything(&self) -> (Vec<i64>, String) {
        let mut counts = self.snapshot().await.to_vec();
        for table in
            ["subscriptions", "subscription_version_history", "subscription_version_changes", "idempotency_keys"]
        {
            counts.push(self.count(&format!("SELECT count(*) FROM {table}")).await);
        }
        let versions: Option<String> = sqlx::query_scalar(
            "SELECT string_agg(id || ':' || plan_version_id::text || ':' || updated_at::text, ',' ORDER BY id)
             FROM subscriptions",
        )
        .fetch_one(&self.pool)
        .await
        .unwrap();
        let plans: Option<String> = sqlx::query_scalar(
            "SELECT string_agg(id::text || ':' || status || ':' || updated_at::text, ',' ORDER BY id) FROM plan_versions",
        )
        .fetch_one(&self.pool)
        .await
        .unwrap();
        (counts, format!("{versions:?}|{plans:?}"))
    }

    /// A published plan with `n` live subscriptions `<plan>-s<i>` and a draft (version 2).
    async fn plan_with_draft(&self, plan: &str, n: usize) {
        self.published_plan(plan).await;
        for i in 0..n {
            let customer = format!("{plan}-c{i}");
            assert_eq!(self.create_customer(&customer).await.0, StatusCode::OK);
            self.subscribe(&format!("{plan}-s{i}"), &customer, plan).await;
        }
        let (status, body) = self.create_draft(plan).await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
}

/// Sends the same refused request as a preview and as a publish: same status and code, and
/// nothing changed by either.
async fn assert_refused_alike(app: &TestApp, plan: &str, body: &Value, status: StatusCode, code: &str) {
    let before = app.everything().await;
    let preview = app.preview(plan, body).await;
    assert_error(&preview, status, code);
    assert_eq!(app.everything().await, before, "a refused preview changed rows");
    let publish = app.publish(plan, body).await;
    assert_error(&publish, status, code);
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn preview_refuses_what_publish_refuses_with_the_same_code(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    app.published_plan("no-draft").await;
    let all = json!({ "migrationType": "ALL_CUSTOMERS" });

    assert_refused_alike(&app, "missing", &all, StatusCode::NOT_FOUND, "PlanNotFound").await;
    assert_refused_alike(&app, "no-draft", &all, StatusCode::BAD_REQUEST, "PackageAlreadyPublished").await;
    app.draft_plan("draft").await;
    for body in [
        json!({}),
        json!({ "migrationType": "SOME_CUSTOMERS" }),
        json!({ "migrationType": "ALL_CUSTOMERS", "extra": 1 }),
        json!({ "migrationType": null }),
    ] {
        assert_refused_alike(&app, "draft", &body, StatusCode::BAD_REQUEST, "BadUserInput").await;
    }
    for raw in ["", "[]", r#"{"migrationType":"#] {
        assert_error(&app.preview_raw("draft", raw).await, StatusCode::BAD_REQUEST, "BadUserInput");
    }
    // a plan of another environment is not there
    let other = app.other_environment().await;
    assert_error(&other.preview("draft", &all).await, StatusCode::NOT_FOUND, "PlanNotFound");
    // while a publish is in flight (no worker runs here, so it stays PENDING)
    app.publish_ok("draft").await;
    assert_refused_alike(&app, "draft", &all, StatusCode::BAD_REQUEST, "ObjectAlreadyBeingUsedByAnotherRequestError")
        .await;
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn preview_counts_who_would_move_and_changes_nothing(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    app.plan_with_draft("counted", 6).await;
    // one annual, one in trial, one canceled (not live: it does not move)
    sqlx::query("UPDATE subscriptions SET billing_period = 'ANNUALLY' WHERE id = 'counted-s1'")
        .execute(&app.pool)
        .await
        .unwrap();
    sqlx::query("UPDATE subscriptions SET status = 'IN_TRIAL' WHERE id = 'counted-s2'")
        .execute(&app.pool)
        .await
        .unwrap();
    sqlx::query("UPDATE subscriptions SET status = 'CANCELED' WHERE id = 'counted-s3'")
        .execute(&app.pool)
        .await
        .unwrap();
    // another plan's subscriptions are not counted
    app.plan_with_draft("elsewhere", 2).await;
    let before = app.everything().await;

    let (status, body) = app.preview("counted", &json!({ "migrationType": "ALL_CUSTOMERS" })).await;

    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(app.everything().await, before, "a preview changed rows");
    let p = &body["data"];
    assert_eq!(p["planId"], "counted");
    assert_eq!(p["migrationType"], "ALL_CUSTOMERS");
    assert_eq!(p["versionChangeBehaviour"], "IMMEDIATE");
    assert_eq!(p["targetVersion"], 2);
    assert_eq!(p["affectedSubscriptionsCount"], 5);
    assert_eq!(p["affectedCustomersCount"], 5);
    assert_eq!(p["byStatus"], json!({ "ACTIVE": 4, "IN_TRIAL": 1, "NOT_STARTED": 0, "PAYMENT_PENDING": 0 }));
    assert_eq!(p["byBillingPeriod"], json!({ "MONTHLY": 4, "ANNUALLY": 1 }));
    assert_eq!(p["byFromVersion"], json!([{ "version": 1, "count": 5 }]));
    // IMMEDIATE: everyone moves now, on one day
    let first = p["firstMoveAt"].as_str().unwrap().parse::<chrono::DateTime<chrono::Utc>>().unwrap();
    assert!((chrono::Utc::now() - first).num_seconds().abs() < 60, "{p}");
    assert_eq!(p["firstMoveAt"], p["lastMoveAt"]);
    assert_eq!(p["byDay"], json!([{ "date": first.format("%Y-%m-%d").to_string(), "count": 5 }]));
    assert_eq!(p["subscriptionIds"], json!(["counted-s0", "counted-s1", "counted-s2", "counted-s4", "counted-s5"]));
    assert_eq!(p["pagination"], json!({ "next": null, "prev": null }));

    // NEW_CUSTOMERS moves nobody
    let (status, body) = app.preview("counted", &json!({ "migrationType": "NEW_CUSTOMERS" })).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["data"]["affectedSubscriptionsCount"], 0);
    assert_eq!(body["data"]["versionChangeBehaviour"], "NEVER");
    assert_eq!(body["data"]["subscriptionIds"], json!([]));
    assert_eq!(body["data"]["byDay"], json!([]));
    assert_eq!(app.everything().await, before, "a preview changed rows");
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn preview_pages_through_who_would_move(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    app.plan_with_draft("paged", 5).await;
    let all = json!({ "migrationType": "ALL_CUSTOMERS" });

    let mut seen = Vec::new();
    let mut path = "/api/v1/plans/paged/publish/preview?limit=2".to_owned();
    loop {
        let (status, body) = app.post(&path, &all).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["data"]["affectedSubscriptionsCount"], 5, "every page carries the whole count");
        let ids = body["data"]["subscriptionIds"].as_array().unwrap();
        assert!(ids.len() <= 2);
        seen.extend(ids.iter().map(|v| v.as_str().unwrap().to_owned()));
        match body["data"]["pagination"]["next"].as_str() {
            Some(next) => path = format!("/api/v1/plans/paged/publish/preview?limit=2&after={next}"),
            None => break,
        }
    }
    assert_eq!(seen, ["paged-s0", "paged-s1", "paged-s2", "paged-s3", "paged-s4"]);
    assert_error(
        &app.post("/api/v1/plans/paged/publish/preview?limit=0", &all).await,
        StatusCode::BAD_REQUEST,
        "BadUserInput",
    );
    assert_error(
        &app.post("/api/v1/plans/paged/publish/preview?after=x", &all).await,
        StatusCode::BAD_REQUEST,
        "BadUserInput",
    );
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn a_read_only_key_may_preview_but_not_publish(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    app.plan_with_draft("looked-at", 2).await;
    let reader = app.read_only().await;
    let all = json!({ "migrationType": "ALL_CUSTOMERS" });

    let (status, body) = reader.preview("looked-at", &all).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["data"]["affectedSubscriptionsCount"], 2);
    assert_error(&reader.publish("looked-at", &all).await, StatusCode::FORBIDDEN, "AccessDeniedError");
    let (status, body) = TestApp::send(reader.request(Method::POST, "/plans/looked-at/preview").json(&json!({
        "name": "n", "label": "l", "currency": "EUR", "priceIds": [], "eligibleCustomerIds": [],
        "versionChangeBehaviour": "IMMEDIATE",
    })))
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["affectedSchedulesCount"], 2);
    assert_eq!(app.task_count().await, 0);
}

/// A Sequence body for `PUT /plans/{id}` and its preview.
fn sequence_body(extra: Value) -> Value {
    let mut body = json!({
        "name": "Pro", "label": "Pro (2026)", "currency": "EUR", "priceIds": [], "eligibleCustomerIds": [],
    });
    if let (Some(b), Value::Object(extra)) = (body.as_object_mut(), extra) {
        b.extend(extra);
    }
    body
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn sequence_preview_refuses_what_put_refuses_and_answers_what_it_would_do(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let sequence = |method: Method, path: &str, body: &Value| {
        TestApp::send(app.request(method, path).basic_auth(&app.key, None::<&str>).json(body))
    };
    let nbd = sequence_body(json!({ "versionChangeBehaviour": "NEXT_BILLING_DATE" }));
    let refusals = [
        ("missing", nbd.clone(), StatusCode::NOT_FOUND, "PlanNotFound"),
        ("pro", sequence_body(json!({ "currency": "XYZ" })), StatusCode::BAD_REQUEST, "BadUserInput"),
        ("pro", sequence_body(json!({ "priceIds": ["nope"] })), StatusCode::NOT_FOUND, "PriceNotFound"),
        ("pro", sequence_body(json!({ "id": "other" })), StatusCode::BAD_REQUEST, "BadUserInput"),
        ("pro", sequence_body(json!({ "surprise": true })), StatusCode::BAD_REQUEST, "BadUserInput"),
    ];
    // a plan whose version 1 is a draft
    let (status, body) = sequence(Method::POST, "/plans", &sequence_body(json!({ "id": "pro" }))).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    for (plan, body, status, code) in &refusals {
        let before = app.everything().await;
        assert_error(&sequence(Method::POST, &format!("/plans/{plan}/preview"), body).await, *status, code);
        assert_eq!(app.everything().await, before, "a refused preview changed rows");
        assert_error(&sequence(Method::PUT, &format!("/plans/{plan}"), body).await, *status, code);
    }

    // the first PUT with a behaviour publishes version 1 and has nobody to move
    let before = app.everything().await;
    let (status, first) = sequence(Method::POST, "/plans/pro/preview", &nbd).await;
    assert_eq!(status, StatusCode::OK, "{first}");
    assert_eq!(app.everything().await, before);
    assert_eq!(first["targetVersion"], 1);
    assert_eq!(first["publishes"], true);
    assert_eq!(first["versionChangeBehaviour"], "NEVER");
    assert_eq!(first["affectedSchedulesCount"], 0);
    // an edit of the draft without a behaviour publishes nothing
    let (_, edit) = sequence(Method::POST, "/plans/pro/preview", &sequence_body(json!({}))).await;
    assert_eq!(edit["publishes"], false);
    assert_eq!(edit["targetVersion"], 1);

    let (status, body) = sequence(Method::PUT, "/plans/pro", &nbd).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["status"], "LIVE");
    for i in 0..3 {
        let customer = format!("c{i}");
        assert_eq!(app.create_customer(&customer).await.0, StatusCode::OK);
        let (status, body) = sequence(
            Method::POST,
            "/billing-schedules",
            &json!({ "id": format!("pro-s{i}"), "customerId": customer, "planId": "pro",
                     "startDate": "2026-01-15T00:00:00Z" }),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    // on a LIVE plan a PUT would publish version 2 and move every schedule
    let (status, next) = sequence(Method::POST, "/plans/pro/preview", &nbd).await;
    assert_eq!(status, StatusCode::OK, "{next}");
    assert_eq!(next["targetVersion"], 2);
    assert_eq!(next["versionChangeBehaviour"], "NEXT_BILLING_DATE");
    assert_eq!(next["affectedSchedulesCount"], 3);
    assert_eq!(next["billingScheduleIds"], json!(["pro-s0", "pro-s1", "pro-s2"]));
    // each moves at its next billing date: the 15th of a month, all three on the same day
    let day = next["byDay"][0]["date"].as_str().unwrap();
    assert!(day.ends_with("-15"), "{next}");
    assert_eq!(next["byDay"][0]["count"], 3);
    let never = sequence_body(json!({ "versionChangeBehaviour": "NEVER" }));
    let (_, never) = sequence(Method::POST, "/plans/pro/preview", &never).await;
    assert_eq!(never["affectedSchedulesCount"], 0);
    assert_eq!(never["publishes"], true);
    assert_eq!(app.count("SELECT count(*) FROM plan_versions").await, 1);
}

/// The preview runs the checks the worker runs before it publishes a draft
/// (`store::catalog`): a base plan or a compatible add-on still a draft makes the publish fail
/// once planned, and the preview says so in `wouldFail`, with the task's code and message,
/// while still answering 200 with its counts — the request itself would be accepted.
#[sqlx::test(migrator = "store::MIGRATOR")]
async fn preview_answers_what_the_worker_would_refuse(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let all = json!({ "migrationType": "ALL_CUSTOMERS" });
    app.draft_plan("base").await;
    app.addon("addon-x", "DRAFT").await;
    app.published_plan("base-live").await;
    app.addon("addon-live", "PUBLISHED").await;
    app.plan_with_draft("child", 2).await;
    app.plan_with_draft("main", 1).await;
    app.plan_with_draft("both", 0).await;
    app.plan_with_draft("healthy", 3).await;
    for (plan, patch) in [
        ("child", json!({ "parentPlanId": "base" })),
        ("main", json!({ "compatibleAddonIds": ["addon-live", "addon-x"] })),
        ("both", json!({ "parentPlanId": "base", "compatibleAddonIds": ["addon-x"] })),
        ("healthy", json!({ "parentPlanId": "base-live", "compatibleAddonIds": ["addon-live"] })),
    ] {
        let (status, body) = app.update_plan(plan, &patch).await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    let before = app.everything().await;

    let (status, body) = app.preview("child", &all).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        body["data"]["wouldFail"],
        json!({ "code": "PlanCannotBePublishWhenBasePlanIsDraft", "message": "base plan `base` is still a draft" })
    );
    assert_eq!(body["data"]["affectedSubscriptionsCount"], 2, "the counts are still answered");

    let (status, body) = app.preview("main", &all).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        body["data"]["wouldFail"],
        json!({
            "code": "PlanCannotBePublishWhenCompatibleAddonIsDraft",
            "message": "compatible add-on `addon-x` is still a draft",
        })
    );

    // the base plan is checked first, as the worker does
    let (_, body) = app.preview("both", &json!({ "migrationType": "NEW_CUSTOMERS" })).await;
    assert_eq!(body["data"]["wouldFail"]["code"], "PlanCannotBePublishWhenBasePlanIsDraft", "{body}");

    // a published base plan and add-on refuse nothing
    let (status, body) = app.preview("healthy", &all).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["data"].get("wouldFail"), Some(&Value::Null), "{body}");
    assert_eq!(body["data"]["affectedSubscriptionsCount"], 3);
    // a read-only key gets the same verdict
    let (_, body) = app.read_only().await.preview("child", &all).await;
    assert_eq!(body["data"]["wouldFail"]["code"], "PlanCannotBePublishWhenBasePlanIsDraft", "{body}");
    assert_eq!(app.everything().await, before, "a preview changed rows");

    // a refusal of the request itself is still an error, not a verdict
    assert_refused_alike(&app, "base-live", &all, StatusCode::BAD_REQUEST, "PackageAlreadyPublished").await;
    app.publish_ok("child").await;
    assert_refused_alike(&app, "child", &all, StatusCode::BAD_REQUEST, "ObjectAlreadyBeingUsedByAnotherRequestError")
        .await;
}

/// A Sequence update publishes its version in the request and its migration's planning meets
/// no catalog refusal, so its preview's `wouldFail` is null — even for a plan whose `parentId`
/// names a plan that is still a draft, which the `PUT` then publishes.
#[sqlx::test(migrator = "store::MIGRATOR")]
async fn sequence_preview_would_fail_is_the_update_planning_verdict(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let sequence = |method: Method, path: &str, body: &Value| {
        TestApp::send(app.request(method, path).basic_auth(&app.key, None::<&str>).json(body))
    };
    app.draft_plan("stigg-draft").await;
    let body = sequence_body(json!({ "id": "seq", "parentId": "stigg-draft" }));
    let (status, created) = sequence(Method::POST, "/plans", &body).await;
    assert_eq!(status, StatusCode::OK, "{created}");
    let nbd = sequence_body(json!({ "parentId": "stigg-draft", "versionChangeBehaviour": "NEXT_BILLING_DATE" }));

    // the draft (version 1) would be published
    let (status, preview) = sequence(Method::POST, "/plans/seq/preview", &nbd).await;
    assert_eq!(status, StatusCode::OK, "{preview}");
    assert_eq!(preview["publishes"], true);
    assert_eq!(preview.get("wouldFail"), Some(&Value::Null), "{preview}");
    let (status, put) = sequence(Method::PUT, "/plans/seq", &nbd).await;
    assert_eq!(status, StatusCode::OK, "{put}");
    assert_eq!(put["status"], "LIVE");

    // on a LIVE plan, version 2 would be created and published
    let (status, preview) = sequence(Method::POST, "/plans/seq/preview", &nbd).await;
    assert_eq!(status, StatusCode::OK, "{preview}");
    assert_eq!(preview["targetVersion"], 2);
    assert_eq!(preview.get("wouldFail"), Some(&Value::Null), "{preview}");
    // a refusal of the request itself is still an error
    let unknown_price = sequence_body(json!({ "priceIds": ["nope"] }));
    assert_error(
        &sequence(Method::POST, "/plans/seq/preview", &unknown_price).await,
        StatusCode::NOT_FOUND,
        "PriceNotFound",
    );
}

/// Follows local `$ref`s until a schema that is not one.
fn resolved<'a>(spec: &'a Value, mut node: &'a Value) -> &'a Value {
    while let Some(reference) = node.get("$ref").and_then(Value::as_str) {
        let pointer = reference.strip_prefix('#').unwrap_or_else(|| panic!("non-local $ref {reference}"));
        node = spec.pointer(pointer).unwrap_or_else(|| panic!("dangling $ref {reference}"));
    }
    node
}

/// The object schema, reached from `node` through `$ref`s, `allOf` and `properties.data`, that
/// has a property `name`.
fn holder<'a>(spec: &'a Value, node: &'a Value, name: &str) -> Option<&'a Value> {
    let node = resolved(spec, node);
    if node["properties"].get(name).is_some() {
        return Some(node);
    }
    let parts = node["allOf"].as_array().into_iter().flatten();
    parts.chain(node["properties"].get("data")).find_map(|part| holder(spec, part, name))
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn the_document_describes_would_fail(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let (status, spec) = TestApp::send(app.anonymous(Method::GET, "/openapi.json")).await;
    assert_eq!(status, StatusCode::OK);

    let would_fail = &spec["components"]["schemas"]["WouldFail"];
    assert_eq!(would_fail["type"], "object", "{would_fail}");
    assert_eq!(would_fail["required"], json!(["code", "message"]));
    assert_eq!(would_fail["properties"]["code"]["$ref"], "#/components/schemas/ErrorCode");
    assert_eq!(would_fail["properties"]["message"]["type"], "string");

    for (path, count) in [
        ("/api/v1/plans/{id}/publish/preview", "affectedSubscriptionsCount"),
        ("/plans/{id}/preview", "affectedSchedulesCount"),
    ] {
        let answer = &spec["paths"][path]["post"]["responses"]["200"]["content"]["application/json"]["schema"];
        let moves = holder(&spec, answer, "wouldFail").unwrap_or_else(|| panic!("{path}: no wouldFail in {answer}"));
        let required: Vec<&str> = moves["required"].as_array().unwrap().iter().filter_map(Value::as_str).collect();
        assert!(required.contains(&"wouldFail"), "{path}: wouldFail is always there: {moves}");
        // nullable: null, or the object
        let variants = moves["properties"]["wouldFail"]["oneOf"].as_array().unwrap_or_else(|| panic!("{moves}"));
        assert!(variants.iter().any(|v| v["type"] == "null"), "{path}: {variants:?}");
        assert!(variants.iter().any(|v| v["$ref"] == "#/components/schemas/WouldFail"), "{path}: {variants:?}");
        assert!(holder(&spec, answer, count).is_some(), "{path}: no {count}");
    }
}
