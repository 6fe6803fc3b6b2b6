//! Migration policies (`/api/v1/plans/{id}/migration-policy`, `/api/v1/migration-policy`) and
//! maker-checker approval (`/api/v1/tasks/{id}/approve`, `/reject`): written by admin keys only,
//! refused in the contract's shape with nothing changed, pinned on a task when it is accepted,
//! and counted by the previews. No worker runs here; what a worker does with a pinned policy
//! (exclusions, notice, approval) is tested end to end in `crates/cutover/tests/it/policy.rs`.

use crate::harness::{assert_error, task_id_of, TestApp, ENV_A};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use sqlx::PgPool;
use store::api_keys::Scope;

impl TestApp {
    async fn admin(&self) -> TestApp {
        let key = store::api_keys::create_key(&self.pool, ENV_A, Scope::Admin, None).await.expect("create key");
        self.with_key(key.secret)
    }

    async fn put_policy(&self, path: &str, body: &Value) -> crate::harness::Answer {
        Self::send(self.request(Method::PUT, path).json(body)).await
    }

    async fn policies(&self) -> i64 {
        self.count("SELECT count(*) FROM migration_policies").await
    }
}

fn full_policy() -> Value {
    json!({
        "exclude": {"statuses": ["IN_TRIAL", "PAYMENT_PENDING"], "customerIds": ["cus-vip"],
                    "metadata": {"grandfathered": "true"}, "renewingWithin": "P3D"},
        "noticePeriod": "P30D",
        "requireApproval": true
    })
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn policies_are_written_by_admins_read_by_anyone_and_refused_whole_when_wrong(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let admin = app.admin().await;
    app.published_plan("gold").await;

    // nothing set: the plan and the environment say so
    let (status, body) = app.get("/api/v1/plans/gold/migration-policy").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["data"]["source"], "NONE");
    assert_eq!(body["data"]["requireApproval"], false);

    // a server key may not write; an unknown plan is 404; a wrong policy is 400, all changing nothing
    assert_error(
        &app.put_policy("/api/v1/plans/gold/migration-policy", &full_policy()).await,
        StatusCode::FORBIDDEN,
        "AccessDeniedError",
    );
    assert_error(
        &admin.put_policy("/api/v1/plans/missing/migration-policy", &full_policy()).await,
        StatusCode::NOT_FOUND,
        "PlanNotFound",
    );
    for bad in [
        json!({"noticePeriod": "P1M"}),
        json!({"noticePeriod": "thirty days"}),
        json!({"exclude": {"statuses": ["ASLEEP"]}}),
        json!({"exclude": {"metadata": {"tier": 1}}}),
        json!({"exclude": {"renewingWithin": "PT"}}),
        json!({"requireApproval": "yes"}),
        json!({"approval": true}),
        json!([]),
    ] {
        let answer = admin.put_policy("/api/v1/plans/gold/migration-policy", &bad).await;
        assert_error(&answer, StatusCode::BAD_REQUEST, "BadUserInput");
    }
    assert_eq!(app.policies().await, 0);

    // the environment's default applies to every plan without its own
    let (status, body) = admin.put_policy("/api/v1/migration-policy", &json!({"requireApproval": true})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["data"]["source"], "ENVIRONMENT");
    let (_, body) = app.get("/api/v1/plans/gold/migration-policy").await;
    assert_eq!(
        (body["data"]["source"].clone(), body["data"]["requireApproval"].clone()),
        (json!("ENVIRONMENT"), json!(true))
    );

    // the plan's own replaces the default whole, and reads back as written
    let (status, body) = admin.put_policy("/api/v1/plans/gold/migration-policy", &full_policy()).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (_, read) = app.get("/api/v1/plans/gold/migration-policy").await;
    let data = &read["data"];
    assert_eq!(data["source"], "PLAN");
    assert_eq!(data["exclude"], full_policy()["exclude"]);
    assert_eq!(data["noticePeriod"], "P30D");
    assert_eq!(data["requireApproval"], true);
    assert!(data["updatedBy"].is_string() && data["updatedAt"].is_string(), "{read}");

    // removing the plan's own falls back to the default; removing the default leaves none
    let (status, body) = admin.delete("/api/v1/plans/gold/migration-policy").await;
    assert_eq!((status, body["data"]["source"].clone()), (StatusCode::OK, json!("ENVIRONMENT")));
    let (status, body) = admin.delete("/api/v1/migration-policy").await;
    assert_eq!((status, body["data"]["source"].clone()), (StatusCode::OK, json!("NONE")));
    assert_eq!(app.policies().await, 0);

    // another environment sees none of it
    admin.put_policy("/api/v1/migration-policy", &json!({"noticePeriod": "P7D"})).await;
    let other = app.other_environment().await;
    let (_, body) = other.get("/api/v1/migration-policy").await;
    assert_eq!(body["data"]["source"], "NONE");
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn a_task_that_needs_approval_waits_and_only_another_admin_decides(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let requester = app.admin().await;
    let checker = app.admin().await;
    requester.published_plan("gold").await;
    requester.create_draft("gold").await;
    requester.put_policy("/api/v1/plans/gold/migration-policy", &json!({"requireApproval": true})).await;

    let (status, body) = requester.publish("gold", &json!({"migrationType": "ALL_CUSTOMERS"})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let task = task_id_of(&body).to_string();
    let (_, view) = app.get_task(&task).await;
    assert_eq!(view["data"]["status"], "PENDING");
    assert_eq!(view["data"]["approval"]["state"], "PENDING");
    assert_eq!(view["data"]["policy"]["requireApproval"], true);
    let requested_by = view["data"]["approval"]["requestedBy"].as_str().unwrap().to_owned();
    assert!(!requested_by.is_empty());

    // the plan stays held while approval is pending
    assert_error(
        &requester.publish("gold", &json!({"migrationType": "ALL_CUSTOMERS"})).await,
        StatusCode::BAD_REQUEST,
        "ObjectAlreadyBeingUsedByAnotherRequestError",
    );

    // the requester cannot approve its own task; a server key cannot approve at all
    let before = app.snapshot().await;
    let approve = format!("/api/v1/tasks/{task}/approve");
    assert_error(&requester.post_empty(&approve).await, StatusCode::FORBIDDEN, "AccessDeniedError");
    assert_error(&app.post_empty(&approve).await, StatusCode::FORBIDDEN, "AccessDeniedError");
    assert_error(
        &checker.post_empty("/api/v1/tasks/00000000-0000-0000-0000-000000000000/approve").await,
        StatusCode::NOT_FOUND,
        "NotFound",
    );
    assert_eq!(app.snapshot().await, before, "a refused decision changed rows");

    // another admin approves: the task is announced to the workers once more
    let outbox = app.outbox_count().await;
    let (status, body) = checker.post_empty(&approve).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["data"]["approval"]["state"], "APPROVED");
    assert_eq!(body["data"]["approval"]["requestedBy"], requested_by.as_str());
    assert_ne!(body["data"]["approval"]["decidedBy"], requested_by.as_str());
    assert_eq!(app.outbox_count().await, outbox + 1);
    // a decision is made once
    assert_error(&checker.post_empty(&approve).await, StatusCode::BAD_REQUEST, "BadUserInput");
    assert_error(
        &checker.post_empty(&format!("/api/v1/tasks/{task}/reject")).await,
        StatusCode::BAD_REQUEST,
        "BadUserInput",
    );
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn a_rejected_task_ends_canceled_and_leaves_the_draft_a_draft(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let requester = app.admin().await;
    let checker = app.admin().await;
    requester.published_plan("gold").await;
    requester.create_draft("gold").await;
    requester.put_policy("/api/v1/migration-policy", &json!({"requireApproval": true})).await;
    let (_, body) = requester.publish("gold", &json!({"migrationType": "ALL_CUSTOMERS"})).await;
    let task = task_id_of(&body).to_string();

    let reject = format!("/api/v1/tasks/{task}/reject");
    assert_error(&requester.post_empty(&reject).await, StatusCode::FORBIDDEN, "AccessDeniedError");
    let (status, body) = checker.post_empty(&reject).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["data"]["status"], "CANCELED");
    assert_eq!(body["data"]["approval"]["state"], "REJECTED");
    let draft: String = sqlx::query_scalar(
        "SELECT status FROM plan_versions WHERE plan_id = 'gold' ORDER BY version_number DESC LIMIT 1",
    )
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert_eq!(draft, "DRAFT");
    let kinds: Vec<String> = sqlx::query_scalar("SELECT kind FROM task_events WHERE task_id = $1::uuid ORDER BY id")
        .bind(&task)
        .fetch_all(&app.pool)
        .await
        .unwrap();
    assert!(kinds.contains(&"rejected".to_owned()), "{kinds:?}");
    // the plan is free again
    let (status, body) = requester.publish("gold", &json!({"migrationType": "NEW_CUSTOMERS"})).await;
    assert_eq!(status, StatusCode::OK, "{body}");

    // a task that needs no approval cannot be approved or rejected
    let (_, plain) = app.get_task(&task_id_of(&body).to_string()).await;
    assert!(plain["data"].get("approval").is_none(), "{plain}");
    assert_error(
        &checker.post_empty(&format!("/api/v1/tasks/{}/approve", plain["data"]["id"].as_str().unwrap())).await,
        StatusCode::BAD_REQUEST,
        "BadUserInput",
    );
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn the_preview_counts_whom_the_policy_leaves_alone_and_when_the_rest_move(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let admin = app.admin().await;
    app.published_plan("gold").await;
    for i in 0..8 {
        let customer = if i == 2 { "cus-vip".to_owned() } else { format!("c{i}") };
        assert_eq!(app.create_customer(&customer).await.0, StatusCode::OK);
        app.subscribe(&format!("s{i}"), &customer, "gold").await;
    }
    // s0 in trial, s1 payment pending, s2 a named customer, s3 grandfathered; s4..s7 move
    for sql in [
        "UPDATE subscriptions SET status = 'IN_TRIAL' WHERE id = 's0'",
        "UPDATE subscriptions SET status = 'PAYMENT_PENDING' WHERE id = 's1'",
        "UPDATE subscriptions SET metadata = '{\"grandfathered\": \"true\"}' WHERE id = 's3'",
        // started 45 days ago: each renews in about 15 days
        "UPDATE subscriptions SET start_date = now() - interval '45 days'",
    ] {
        sqlx::query(sql).execute(&app.pool).await.unwrap();
    }
    app.create_draft("gold").await;
    let mut policy = full_policy();
    policy["exclude"]["renewingWithin"] = json!("P1D");
    admin.put_policy("/api/v1/plans/gold/migration-policy", &policy).await;

    let (status, body) =
        app.post("/api/v1/plans/gold/publish/preview", &json!({"migrationType": "ALL_CUSTOMERS"})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let data = &body["data"];
    assert_eq!(data["affectedSubscriptionsCount"], 4, "{body}");
    assert_eq!(data["excludedCount"], 4);
    assert_eq!(data["excludedByReason"], json!({"status": 2, "customer": 1, "metadata": 1, "renewingWithin": 0}));
    assert_eq!(data["noticePeriod"], "P30D");
    assert_eq!(data["requiresApproval"], true);
    assert_eq!(data["versionChangeBehaviour"], "NEXT_BILLING_DATE");
    let mut ids: Vec<String> =
        data["subscriptionIds"].as_array().unwrap().iter().map(|v| v.as_str().unwrap().to_owned()).collect();
    ids.sort();
    assert_eq!(ids, ["s4", "s5", "s6", "s7"]);
    // nobody moves before acceptance + 30 days
    let first: chrono::DateTime<chrono::Utc> = data["firstMoveAt"].as_str().unwrap().parse().unwrap();
    assert!(first >= chrono::Utc::now() + chrono::Duration::days(30) - chrono::Duration::minutes(5), "{body}");

    // renewing within 20 days: everyone left renews within a month of their start 45 days ago
    policy["exclude"]["renewingWithin"] = json!("P20D");
    admin.put_policy("/api/v1/plans/gold/migration-policy", &policy).await;
    let (_, body) = app.post("/api/v1/plans/gold/publish/preview", &json!({"migrationType": "ALL_CUSTOMERS"})).await;
    assert_eq!(body["data"]["excludedByReason"]["renewingWithin"], 4, "{body}");
    assert_eq!(body["data"]["affectedSubscriptionsCount"], 0);
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn a_rollout_narrows_the_policy_and_refuses_a_notice_it_cannot_pace(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let admin = app.admin().await;
    app.published_plan("gold").await;
    app.create_draft("gold").await;
    admin.put_policy("/api/v1/plans/gold/migration-policy", &json!({"exclude": {"statuses": ["IN_TRIAL"]}})).await;
    let rollouts = "/api/v1/plans/gold/rollouts";

    let before = app.snapshot().await;
    let notice = json!({"cohorts": [50, 100], "interval": "PT1H", "policy": {"noticePeriod": "P7D"}});
    assert_error(&app.post(rollouts, &notice).await, StatusCode::BAD_REQUEST, "BadUserInput");
    let wrong = json!({"cohorts": [50, 100], "interval": "PT1H", "policy": {"exclude": {"status": []}}});
    assert_error(&app.post(rollouts, &wrong).await, StatusCode::BAD_REQUEST, "BadUserInput");
    assert_eq!(app.snapshot().await, before);

    let narrowing = json!({"cohorts": [50, 100], "interval": "PT1H",
                           "policy": {"exclude": {"customerIds": ["c1"]}, "requireApproval": true}});
    let (status, body) = app.post(rollouts, &narrowing).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (_, task) = app.get_task(&task_id_of(&body).to_string()).await;
    assert_eq!(task["data"]["policy"]["exclude"], json!({"statuses": ["IN_TRIAL"], "customerIds": ["c1"]}));
    assert_eq!(task["data"]["approval"]["state"], "PENDING");
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn the_rescuer_leaves_a_task_waiting_for_approval_alone_once_its_wait_was_announced(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let admin = app.admin().await;
    admin.published_plan("gold").await;
    admin.create_draft("gold").await;
    admin.put_policy("/api/v1/migration-policy", &json!({"requireApproval": true})).await;
    let (_, body) = admin.publish("gold", &json!({"migrationType": "ALL_CUSTOMERS"})).await;
    let task = task_id_of(&body);
    sqlx::query("UPDATE tasks SET updated_at = now() - interval '1 hour' WHERE id = $1")
        .bind(task)
        .execute(&app.pool)
        .await
        .unwrap();
    let rescue = || async {
        let mut work = store::Work::begin(&app.pool).await.unwrap();
        let rescued = store::actions::rescue_stalled(&mut work, 60).await.unwrap();
        work.rollback();
        rescued.into_iter().map(|t| t.0).collect::<Vec<_>>()
    };
    // its announcing job may have been lost: it is announced again
    assert_eq!(rescue().await, [task]);
    // once a worker said it waits, it waits for an admin, not for the rescuer
    sqlx::query("UPDATE tasks SET approval_announced = true WHERE id = $1")
        .bind(task)
        .execute(&app.pool)
        .await
        .unwrap();
    assert!(rescue().await.is_empty());
}
