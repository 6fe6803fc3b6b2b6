//! `POST /api/v1/plans/{id}/rollouts` and `POST /api/v1/tasks/{id}/pause|resume`, without a
//! worker: what is accepted, what is refused (and that a refusal changes nothing), and who may
//! pause and resume a rollout in which states.

use crate::harness::{assert_error, task_id_of, TestApp, ENV_A};
use reqwest::StatusCode;
use serde_json::{json, Value};
use sqlx::PgPool;
use store::api_keys::Scope;

async fn rollout(app: &TestApp, plan: &str, body: &Value) -> (StatusCode, Value) {
    app.post(&format!("/api/v1/plans/{plan}/rollouts"), body).await
}

/// A published plan with a draft of version 2.
async fn plan_with_draft(app: &TestApp, plan: &str) {
    app.published_plan(plan).await;
    let (status, body) = app.create_draft(plan).await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

async fn admin(app: &TestApp) -> TestApp {
    let key = store::api_keys::create_key(&app.pool, ENV_A, Scope::Admin, None).await.unwrap();
    app.with_key(key.secret)
}

async fn rollout_rows(app: &TestApp) -> i64 {
    app.count("SELECT count(*) FROM task_rollouts").await
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn a_rollout_is_accepted_as_a_staged_rollout_task_showing_its_cohorts(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    plan_with_draft(&app, "plan-r").await;

    let (status, body) = rollout(&app, "plan-r", &json!({"cohorts": [1, 10, 50, 100], "interval": "PT1H"})).await;

    assert_eq!(status, StatusCode::OK, "{body}");
    let id = task_id_of(&body);
    let (status, task) = app.get_task(&id.to_string()).await;
    assert_eq!(status, StatusCode::OK, "{task}");
    let task = &task["data"];
    assert_eq!(task["taskType"], "STAGED_ROLLOUT");
    assert_eq!(task["status"], "PENDING");
    assert_eq!(task["initiatedPackageId"], "plan-r");
    assert_eq!(task["targetVersion"], 2);
    assert_eq!(
        task["rollout"],
        json!({
            "cohorts": [1, 10, 50, 100], "customerIds": null, "cohortCount": 4, "interval": "PT1H",
            "currentCohort": null, "nextCohortAt": null, "paused": false, "pausedAt": null, "pausedBy": null,
        })
    );
    assert_eq!(app.outbox_count().await, 1);
    // nothing is published before a worker runs it
    assert_eq!(app.get_plan("plan-r").await.1["data"]["status"], "DRAFT");
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn named_customers_form_the_first_cohort(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    plan_with_draft(&app, "plan-c").await;
    app.import_customers(&["acme", "globex"]).await;

    let (status, body) =
        rollout(&app, "plan-c", &json!({"customerIds": ["acme", "globex"], "cohorts": [0.5, 100], "interval": "P1D"}))
            .await;

    assert_eq!(status, StatusCode::OK, "{body}");
    let (_, task) = app.get_task(&task_id_of(&body).to_string()).await;
    let shown = &task["data"]["rollout"];
    assert_eq!(shown["cohorts"], json!([0.5, 100]));
    assert_eq!(shown["customerIds"], json!(["acme", "globex"]));
    assert_eq!(shown["cohortCount"], 3);

    // customers alone: one cohort, no interval
    plan_with_draft(&app, "plan-d").await;
    let (status, body) = rollout(&app, "plan-d", &json!({"customerIds": ["acme"]})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (_, task) = app.get_task(&task_id_of(&body).to_string()).await;
    assert_eq!(task["data"]["rollout"]["cohorts"], json!([]));
    assert_eq!(task["data"]["rollout"]["cohortCount"], 1);
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn bad_rollout_bodies_are_refused_and_change_nothing(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    plan_with_draft(&app, "plan-bad").await;
    app.import_customers(&["acme"]).await;
    let before = app.snapshot().await;

    let bad = [
        json!({}),
        json!({"cohorts": [1, 10, 100]}),
        json!({"interval": "PT1H"}),
        json!({"cohorts": [], "interval": "PT1H"}),
        json!({"cohorts": [10, 10, 100], "interval": "PT1H"}),
        json!({"cohorts": [50, 10, 100], "interval": "PT1H"}),
        json!({"cohorts": [1, 10, 50], "interval": "PT1H"}),
        json!({"cohorts": [0, 100], "interval": "PT1H"}),
        json!({"cohorts": [-5, 100], "interval": "PT1H"}),
        json!({"cohorts": [1, 101], "interval": "PT1H"}),
        json!({"cohorts": [0.001, 100], "interval": "PT1H"}),
        json!({"cohorts": ["1", "100"], "interval": "PT1H"}),
        json!({"cohorts": 100, "interval": "PT1H"}),
        json!({"cohorts": [100], "interval": "1 hour"}),
        json!({"cohorts": [100], "interval": "PT"}),
        json!({"cohorts": [100], "interval": "P1M"}),
        json!({"cohorts": [100], "interval": "pt1h"}),
        json!({"cohorts": [100], "interval": "PT1H30"}),
        json!({"cohorts": [100], "interval": "PT0S"}),
        json!({"cohorts": [100], "interval": "P40D"}),
        json!({"cohorts": [100], "interval": 3600}),
        json!({"cohorts": [1, 100], "interval": "PT1H", "migrationType": "ALL_CUSTOMERS"}),
        json!({"customerIds": []}),
        json!({"customerIds": ["acme", "acme"]}),
        json!({"customerIds": [""]}),
        json!({"customerIds": "acme"}),
        json!({"customerIds": ["acme"], "interval": "PT1H"}),
        json!({"customerIds": ["acme", "nobody"]}),
    ];
    for body in &bad {
        let answer = rollout(&app, "plan-bad", body).await;
        assert_error(&answer, StatusCode::BAD_REQUEST, "BadUserInput");
        assert!(answer.1["message"].as_str().unwrap().len() > 5, "{body}: {}", answer.1);
    }
    for raw in ["[1, 100]", "not json", ""] {
        let answer = TestApp::send(
            app.request(reqwest::Method::POST, "/api/v1/plans/plan-bad/rollouts")
                .header("content-type", "application/json")
                .body(raw),
        )
        .await;
        assert_error(&answer, StatusCode::BAD_REQUEST, "BadUserInput");
    }
    assert_eq!(app.snapshot().await, before, "a refused rollout changed rows");
    assert_eq!(rollout_rows(&app).await, 0);
    assert_eq!(app.get_plan("plan-bad").await.1["data"]["status"], "DRAFT");
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn a_rollout_is_refused_as_a_publish_would_be(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let body = json!({"cohorts": [10, 100], "interval": "PT1M"});

    assert_error(&rollout(&app, "no-such-plan", &body).await, StatusCode::NOT_FOUND, "PlanNotFound");

    app.published_plan("plan-live").await;
    let before = app.snapshot().await;
    assert_error(&rollout(&app, "plan-live", &body).await, StatusCode::BAD_REQUEST, "PackageAlreadyPublished");
    assert_eq!(app.snapshot().await, before);

    // one publish or rollout of a plan in flight at a time, either way round
    app.draft_plan("plan-busy").await;
    app.publish_ok("plan-busy").await;
    let before = app.snapshot().await;
    assert_error(
        &rollout(&app, "plan-busy", &body).await,
        StatusCode::BAD_REQUEST,
        "ObjectAlreadyBeingUsedByAnotherRequestError",
    );
    assert_eq!(app.snapshot().await, before);
    assert_eq!(rollout_rows(&app).await, 0);

    plan_with_draft(&app, "plan-rolling").await;
    let (status, accepted) = rollout(&app, "plan-rolling", &body).await;
    assert_eq!(status, StatusCode::OK, "{accepted}");
    assert_error(
        &app.publish("plan-rolling", &json!({"migrationType": "ALL_CUSTOMERS"})).await,
        StatusCode::BAD_REQUEST,
        "ObjectAlreadyBeingUsedByAnotherRequestError",
    );
    assert_error(
        &rollout(&app, "plan-rolling", &body).await,
        StatusCode::BAD_REQUEST,
        "ObjectAlreadyBeingUsedByAnotherRequestError",
    );
    // and the draft it is about to publish cannot be edited under it
    assert_error(
        &app.update_plan("plan-rolling", &json!({"displayName": "changed"})).await,
        StatusCode::BAD_REQUEST,
        "ObjectAlreadyBeingUsedByAnotherRequestError",
    );

    let read_only = app.read_only().await;
    plan_with_draft(&app, "plan-ro").await;
    assert_error(&rollout(&read_only, "plan-ro", &body).await, StatusCode::FORBIDDEN, "AccessDeniedError");
    assert_eq!(rollout_rows(&app).await, 1);
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn the_same_idempotency_key_answers_the_same_rollout(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    plan_with_draft(&app, "plan-idem").await;
    let body = json!({"cohorts": [10, 100], "interval": "PT1M"});
    let send = || {
        TestApp::send(
            app.request(reqwest::Method::POST, "/api/v1/plans/plan-idem/rollouts")
                .header("Idempotency-Key", "rollout-1")
                .json(&body),
        )
    };
    let (status, first) = send().await;
    assert_eq!(status, StatusCode::OK, "{first}");
    let (status, again) = send().await;
    assert_eq!(status, StatusCode::OK, "{again}");
    assert_eq!(task_id_of(&first), task_id_of(&again));
    assert_eq!(app.task_count().await, 1);
    assert_eq!(rollout_rows(&app).await, 1);
    // the key of a publish is not the key of a rollout
    assert_error(
        &TestApp::send(
            app.request(reqwest::Method::POST, "/api/v1/plans/plan-idem/publish")
                .header("Idempotency-Key", "rollout-1")
                .json(&json!({"migrationType": "ALL_CUSTOMERS"})),
        )
        .await,
        StatusCode::BAD_REQUEST,
        "BadUserInput",
    );
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn pause_and_resume_take_an_admin_key_and_a_running_rollout(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let admin = admin(&app).await;
    plan_with_draft(&app, "plan-p").await;
    let (_, body) = rollout(&app, "plan-p", &json!({"cohorts": [10, 100], "interval": "PT1M"})).await;
    let id = task_id_of(&body).to_string();
    let pause = format!("/api/v1/tasks/{id}/pause");
    let resume = format!("/api/v1/tasks/{id}/resume");

    // who may
    assert_error(&app.post_empty(&pause).await, StatusCode::FORBIDDEN, "AccessDeniedError");
    assert_error(&app.read_only().await.post_empty(&pause).await, StatusCode::FORBIDDEN, "AccessDeniedError");
    let unknown = format!("/api/v1/tasks/{}/pause", uuid::Uuid::new_v4());
    assert_error(&admin.post_empty(&unknown).await, StatusCode::NOT_FOUND, "NotFound");
    assert_error(&admin.post_empty("/api/v1/tasks/not-a-uuid/pause").await, StatusCode::NOT_FOUND, "NotFound");
    let other = app.other_environment().await;
    let other_admin =
        app.with_key(store::api_keys::create_key(&app.pool, "env-b", Scope::Admin, None).await.unwrap().secret);
    drop(other);
    assert_error(&other_admin.post_empty(&pause).await, StatusCode::NOT_FOUND, "NotFound");
    assert_error(&admin.post_empty(&resume).await, StatusCode::BAD_REQUEST, "BadUserInput");
    assert_eq!(app.count("SELECT count(*) FROM task_events WHERE kind IN ('paused', 'resumed')").await, 0);

    // pause, twice
    let (status, paused) = admin.post_empty(&pause).await;
    assert_eq!(status, StatusCode::OK, "{paused}");
    assert_eq!(paused["data"]["id"], id.as_str());
    assert_eq!(paused["data"]["rollout"]["paused"], true);
    assert!(paused["data"]["rollout"]["pausedAt"].is_string());
    assert_eq!(app.get_task(&id).await.1["data"]["rollout"]["paused"], true);
    assert_error(&admin.post_empty(&pause).await, StatusCode::BAD_REQUEST, "BadUserInput");

    // resume, twice
    let (status, resumed) = admin.post_empty(&resume).await;
    assert_eq!(status, StatusCode::OK, "{resumed}");
    assert_eq!(resumed["data"]["rollout"]["paused"], false);
    assert_error(&admin.post_empty(&resume).await, StatusCode::BAD_REQUEST, "BadUserInput");

    // both audited with who did it
    let prefix = &admin.key[..12];
    let audited: Vec<(String, Option<String>)> =
        sqlx::query_as("SELECT kind, actor FROM task_events WHERE kind IN ('paused', 'resumed') ORDER BY id")
            .fetch_all(&app.pool)
            .await
            .unwrap();
    assert_eq!(
        audited,
        vec![("paused".to_owned(), Some(prefix.to_owned())), ("resumed".to_owned(), Some(prefix.to_owned()))]
    );

    // a finished rollout, and a task that is no rollout, refuse
    let (status, _) = app.post_empty(&format!("/api/v1/tasks/{id}/cancel")).await;
    assert_eq!(status, StatusCode::OK);
    assert_error(&admin.post_empty(&pause).await, StatusCode::BAD_REQUEST, "BadUserInput");
    assert_error(&admin.post_empty(&resume).await, StatusCode::BAD_REQUEST, "BadUserInput");
    app.draft_plan("plan-pub").await;
    let publish = app.publish_ok("plan-pub").await;
    let answer = admin.post_empty(&format!("/api/v1/tasks/{publish}/pause")).await;
    assert_error(&answer, StatusCode::BAD_REQUEST, "BadUserInput");
    assert!(answer.1["message"].as_str().unwrap().contains("STAGED_ROLLOUT"), "{}", answer.1);
}
