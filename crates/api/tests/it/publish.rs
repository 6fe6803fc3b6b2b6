//! `POST /api/v1/plans/{id}/publish` and `GET /api/v1/tasks/{id}`, against the contract's
//! answers: 200 with a task id, 400 / 401 / 403 / 404 in `{"message", "code"}`.

use crate::harness::{assert_error, list_data, task_id_of, TestApp};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use sqlx::PgPool;
use uuid::Uuid;

const NEW_CUSTOMERS: &str = r#"{"migrationType":"NEW_CUSTOMERS"}"#;

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn publish_accepts_a_draft_and_answers_a_task_id(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    app.draft_plan("plan-basic").await;

    let (status, body) = app.publish("plan-basic", &json!({ "migrationType": "NEW_CUSTOMERS" })).await;

    assert_eq!(status, StatusCode::OK, "{body}");
    let task_id = task_id_of(&body);
    assert_eq!(
        app.task_row(task_id).await,
        Some(("PUBLISH_PLAN".to_owned(), "PENDING".to_owned(), Some("plan-basic".to_owned()), Some(1)))
    );
    let payload: Value =
        sqlx::query_scalar("SELECT payload FROM tasks WHERE id = $1").bind(task_id).fetch_one(&app.pool).await.unwrap();
    // the task's spec, as operators read it with SQL
    assert_eq!(payload, json!({ "specVersion": 1, "kind": "PUBLISH_PLAN", "migrationType": "NEW_CUSTOMERS" }));
    let outbox: Vec<(String, Value)> =
        sqlx::query_as("SELECT routing_key, payload FROM outbox").fetch_all(&app.pool).await.unwrap();
    assert_eq!(outbox, vec![("task".to_owned(), json!({ "kind": "task", "taskId": task_id.to_string() }))]);
    let accepted = app.count("SELECT count(*) FROM task_events WHERE kind = 'accepted'").await;
    assert_eq!(accepted, 1);
    // no worker ran: the draft is still a draft
    let (_, plan) = app.get_plan("plan-basic").await;
    assert_eq!(plan["data"]["status"], "DRAFT");
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn publish_accepts_all_customers(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    app.draft_plan("plan-all").await;

    let (status, body) = app.publish("plan-all", &json!({ "migrationType": "ALL_CUSTOMERS" })).await;

    assert_eq!(status, StatusCode::OK, "{body}");
    let task_id = task_id_of(&body);
    let payload: Value =
        sqlx::query_scalar("SELECT payload FROM tasks WHERE id = $1").bind(task_id).fetch_one(&app.pool).await.unwrap();
    // the task's spec, as operators read it with SQL
    assert_eq!(payload, json!({ "specVersion": 1, "kind": "PUBLISH_PLAN", "migrationType": "ALL_CUSTOMERS" }));
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn a_published_version_gets_a_new_draft_and_that_draft_is_published(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    app.published_plan("plan-v2").await;
    let (status, body) = app.create_draft("plan-v2").await;
    assert_eq!(status, StatusCode::OK, "{body}");

    let task_id = app.publish_ok("plan-v2").await;

    assert_eq!(app.task_row(task_id).await.unwrap().3, Some(2));
    let (_, task) = app.get_task(&task_id.to_string()).await;
    assert_eq!(task["data"]["targetVersion"], 2);
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn the_task_answers_its_state(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    app.draft_plan("plan-task").await;
    let task_id = app.publish_ok("plan-task").await;

    let (status, body) = app.get_task(&task_id.to_string()).await;

    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body.as_object().unwrap().len(), 1, "{body}");
    let task = &body["data"];
    let mut keys: Vec<&str> = task.as_object().unwrap().keys().map(String::as_str).collect();
    keys.sort_unstable();
    assert_eq!(
        keys,
        [
            "affectedCustomersCount",
            "attempts",
            "counts",
            "createdAt",
            "endDate",
            "error",
            "id",
            "initiatedPackageId",
            "progress",
            "rollbackOf",
            "rolledBackBy",
            "skippedCount",
            "startDate",
            "status",
            "targetVersion",
            "taskType",
        ]
    );
    assert_eq!(task["id"], task_id.to_string());
    assert_eq!(task["taskType"], "PUBLISH_PLAN");
    assert_eq!(task["status"], "PENDING");
    assert_eq!(task["progress"], 0);
    assert_eq!(task["counts"], json!({ "total": 0, "processed": 0, "failed": 0 }));
    assert_eq!(task["affectedCustomersCount"], 0);
    assert_eq!(task["initiatedPackageId"], "plan-task");
    assert_eq!(task["targetVersion"], 1);
    assert_eq!(task["error"], Value::Null);
    assert_eq!(task["attempts"], 0);
    assert!(task["createdAt"].as_str().is_some_and(|s| !s.is_empty()), "{task}");
    assert_eq!(task["startDate"], Value::Null);
    assert_eq!(task["endDate"], Value::Null);
    assert_eq!(task["rollbackOf"], Value::Null);
    assert_eq!(task["rolledBackBy"], Value::Null);
    assert_eq!(task["skippedCount"], 0);
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn the_task_list_shows_the_publish(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    app.draft_plan("plan-listed").await;
    let task_id = app.publish_ok("plan-listed").await;

    for query in ["", "?status=PENDING", "?taskType=PUBLISH_PLAN", "?planId=plan-listed"] {
        let answer = app.list_tasks(query).await;
        let data = list_data(&answer);
        assert_eq!(data.len(), 1, "{query}: {}", answer.1);
        assert_eq!(data[0]["id"], task_id.to_string());
    }
    for query in ["?status=COMPLETED", "?taskType=IMPORT_SUBSCRIPTIONS", "?planId=other"] {
        assert!(list_data(&app.list_tasks(query).await).is_empty(), "{query}");
    }
    assert_error(&app.list_tasks("?status=DONE").await, StatusCode::BAD_REQUEST, "BadUserInput");
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn an_unknown_task_is_not_found(pool: PgPool) {
    let app = TestApp::spawn(pool).await;

    assert_error(&app.get_task(&Uuid::new_v4().to_string()).await, StatusCode::NOT_FOUND, "NotFound");
    assert_error(&app.get_task("not-a-uuid").await, StatusCode::NOT_FOUND, "NotFound");
}

// ---- body errors: 400 BadUserInput, and nothing changes ----

/// Publishes `body` under `content_type` and checks the refusal left every row alone.
async fn assert_body_refused(pool: PgPool, content_type: Option<&str>, body: &'static str) {
    let app = TestApp::spawn(pool).await;
    app.draft_plan("plan-body").await;
    let before = app.snapshot().await;

    let answer = app.publish_raw("plan-body", content_type, body).await;

    assert_error(&answer, StatusCode::BAD_REQUEST, "BadUserInput");
    assert_eq!(app.snapshot().await, before, "a refused publish changed rows");
    assert_eq!(app.task_count().await, 0);
    assert_eq!(app.get_plan("plan-body").await.1["data"]["status"], "DRAFT");
}

const JSON: Option<&str> = Some("application/json");

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn publish_refuses_an_extra_property(pool: PgPool) {
    assert_body_refused(pool, JSON, r#"{"migrationType":"NEW_CUSTOMERS","extra":true}"#).await;
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn publish_refuses_a_missing_migration_type(pool: PgPool) {
    assert_body_refused(pool, JSON, "{}").await;
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn publish_refuses_a_null_migration_type(pool: PgPool) {
    assert_body_refused(pool, JSON, r#"{"migrationType":null}"#).await;
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn publish_refuses_an_unknown_migration_type(pool: PgPool) {
    assert_body_refused(pool, JSON, r#"{"migrationType":"SOME_CUSTOMERS"}"#).await;
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn publish_refuses_a_migration_type_in_the_wrong_case(pool: PgPool) {
    assert_body_refused(pool, JSON, r#"{"migrationType":"new_customers"}"#).await;
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn publish_refuses_a_migration_type_that_is_not_a_string(pool: PgPool) {
    assert_body_refused(pool, JSON, r#"{"migrationType":1}"#).await;
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn publish_refuses_malformed_json(pool: PgPool) {
    assert_body_refused(pool, JSON, r#"{"migrationType":"#).await;
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn publish_refuses_a_body_that_is_not_an_object(pool: PgPool) {
    assert_body_refused(pool, JSON, r#"["NEW_CUSTOMERS"]"#).await;
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn publish_refuses_an_empty_body(pool: PgPool) {
    assert_body_refused(pool, JSON, "").await;
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn publish_refuses_a_body_without_content_type(pool: PgPool) {
    assert_body_refused(pool, None, NEW_CUSTOMERS).await;
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn publish_refuses_the_wrong_content_type(pool: PgPool) {
    assert_body_refused(pool, Some("text/plain"), NEW_CUSTOMERS).await;
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn publish_refuses_a_form_body(pool: PgPool) {
    assert_body_refused(pool, Some("application/x-www-form-urlencoded"), "migrationType=NEW_CUSTOMERS").await;
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn publish_refuses_an_id_longer_than_255_characters(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let id = "p".repeat(256);

    let answer = app.publish(&id, &json!({ "migrationType": "NEW_CUSTOMERS" })).await;

    assert_error(&answer, StatusCode::BAD_REQUEST, "BadUserInput");
    assert_eq!(app.task_count().await, 0);
}

// ---- the plan's state ----

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn publishing_an_unknown_plan_is_not_found(pool: PgPool) {
    let app = TestApp::spawn(pool).await;

    let answer = app.publish("no-such-plan", &json!({ "migrationType": "NEW_CUSTOMERS" })).await;

    assert_error(&answer, StatusCode::NOT_FOUND, "PlanNotFound");
    assert_eq!(app.task_count().await, 0);
    assert_eq!(app.outbox_count().await, 0);
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn a_body_error_wins_over_an_unknown_plan(pool: PgPool) {
    let app = TestApp::spawn(pool).await;

    let answer = app.publish("no-such-plan", &json!({ "migrationType": "NOPE" })).await;

    assert_error(&answer, StatusCode::BAD_REQUEST, "BadUserInput");
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn publishing_a_plan_without_a_draft_is_refused(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    app.published_plan("plan-published").await;
    let before = app.snapshot().await;

    let answer = app.publish("plan-published", &json!({ "migrationType": "NEW_CUSTOMERS" })).await;

    assert_error(&answer, StatusCode::BAD_REQUEST, "PackageAlreadyPublished");
    assert_eq!(app.snapshot().await, before);
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn a_second_publish_while_the_first_is_pending_is_refused(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    app.draft_plan("plan-busy").await;
    let first = app.publish_ok("plan-busy").await;
    let before = app.snapshot().await;

    let answer = app.publish("plan-busy", &json!({ "migrationType": "ALL_CUSTOMERS" })).await;

    assert_error(&answer, StatusCode::BAD_REQUEST, "ObjectAlreadyBeingUsedByAnotherRequestError");
    assert_eq!(app.snapshot().await, before);
    assert_eq!(app.task_count().await, 1);
    assert_eq!(app.task_row(first).await.unwrap().1, "PENDING");
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn a_second_publish_of_a_new_draft_while_the_first_is_pending_is_refused(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    app.published_plan("plan-busy-v2").await;
    assert_eq!(app.create_draft("plan-busy-v2").await.0, StatusCode::OK);
    app.publish_ok("plan-busy-v2").await;

    let answer = app.publish("plan-busy-v2", &json!({ "migrationType": "NEW_CUSTOMERS" })).await;

    assert_error(&answer, StatusCode::BAD_REQUEST, "ObjectAlreadyBeingUsedByAnotherRequestError");
    assert_eq!(app.task_count().await, 1);
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn the_draft_cannot_change_while_its_publish_is_pending(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    app.published_plan("plan-frozen").await;
    assert_eq!(app.create_draft("plan-frozen").await.0, StatusCode::OK);
    app.publish_ok("plan-frozen").await;
    let before = app.snapshot().await;

    // the draft being published is still the plan's draft: no second one
    assert_error(&app.create_draft("plan-frozen").await, StatusCode::BAD_REQUEST, "DraftAlreadyExists");
    let busy = "ObjectAlreadyBeingUsedByAnotherRequestError";
    assert_error(
        &app.update_plan("plan-frozen", &json!({ "displayName": "Changed" })).await,
        StatusCode::BAD_REQUEST,
        busy,
    );
    assert_error(&app.remove_draft("plan-frozen").await, StatusCode::BAD_REQUEST, busy);
    assert_error(&app.archive_plan("plan-frozen").await, StatusCode::BAD_REQUEST, busy);

    assert_eq!(app.snapshot().await, before);
    let (_, plan) = app.get_plan("plan-frozen").await;
    assert_eq!(plan["data"]["displayName"], "Plan plan-frozen");
    assert_eq!(plan["data"]["versionNumber"], 2);
}

// ---- Idempotency-Key ----

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn the_same_idempotency_key_answers_the_same_task(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    app.draft_plan("plan-idem").await;
    let body = json!({ "migrationType": "NEW_CUSTOMERS" });

    let (status, first) = app.publish_with_idempotency_key("plan-idem", &body, "key-1").await;
    assert_eq!(status, StatusCode::OK, "{first}");
    let (status, second) = app.publish_with_idempotency_key("plan-idem", &body, "key-1").await;
    assert_eq!(status, StatusCode::OK, "{second}");

    assert_eq!(task_id_of(&first), task_id_of(&second));
    assert_eq!(app.task_count().await, 1);
    assert_eq!(app.outbox_count().await, 1);
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn an_idempotency_key_reused_for_another_plan_is_refused(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    app.draft_plan("plan-idem-a").await;
    app.draft_plan("plan-idem-b").await;
    let body = json!({ "migrationType": "NEW_CUSTOMERS" });
    assert_eq!(app.publish_with_idempotency_key("plan-idem-a", &body, "shared").await.0, StatusCode::OK);

    let answer = app.publish_with_idempotency_key("plan-idem-b", &body, "shared").await;

    assert_error(&answer, StatusCode::BAD_REQUEST, "BadUserInput");
    assert_eq!(app.task_count().await, 1);
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn an_overlong_idempotency_key_is_refused(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    app.draft_plan("plan-idem-long").await;

    let answer = app
        .publish_with_idempotency_key("plan-idem-long", &json!({ "migrationType": "NEW_CUSTOMERS" }), &"k".repeat(256))
        .await;

    assert_error(&answer, StatusCode::BAD_REQUEST, "BadUserInput");
    assert_eq!(app.task_count().await, 0);
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn different_idempotency_keys_on_one_plan_still_meet_the_in_flight_rule(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    app.draft_plan("plan-idem-two").await;
    let body = json!({ "migrationType": "NEW_CUSTOMERS" });
    assert_eq!(app.publish_with_idempotency_key("plan-idem-two", &body, "one").await.0, StatusCode::OK);

    let answer = app.publish_with_idempotency_key("plan-idem-two", &body, "two").await;

    assert_error(&answer, StatusCode::BAD_REQUEST, "ObjectAlreadyBeingUsedByAnotherRequestError");
    assert_eq!(app.task_count().await, 1);
}

// ---- headers the contract lists ----

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn environment_and_account_headers_are_accepted_and_ignored(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let other = app.other_environment().await;
    app.draft_plan("plan-headers").await;
    let env_b: Uuid =
        sqlx::query_scalar("SELECT id FROM environments WHERE name = 'env-b'").fetch_one(&app.pool).await.unwrap();
    let env_a: Uuid =
        sqlx::query_scalar("SELECT id FROM environments WHERE name = 'env-a'").fetch_one(&app.pool).await.unwrap();

    let (status, body) = TestApp::send(
        app.request(Method::POST, "/api/v1/plans/plan-headers/publish")
            .header("X-ENVIRONMENT-ID", env_b.to_string())
            .header("X-ACCOUNT-ID", "some-account")
            .json(&json!({ "migrationType": "NEW_CUSTOMERS" })),
    )
    .await;

    assert_eq!(status, StatusCode::OK, "{body}");
    let task_id = task_id_of(&body);
    let env: Uuid = sqlx::query_scalar("SELECT environment_id FROM tasks WHERE id = $1")
        .bind(task_id)
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(env, env_a, "the key decides the environment, not the header");
    // and a read in env B naming env A in the header still sees env B
    let answer = TestApp::send(
        other.request(Method::GET, &format!("/api/v1/tasks/{task_id}")).header("X-ENVIRONMENT-ID", env_a.to_string()),
    )
    .await;
    assert_error(&answer, StatusCode::NOT_FOUND, "NotFound");
}
