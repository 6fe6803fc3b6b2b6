//! `POST /api/v1/tasks/{id}/rollback`: accepted like every task (task, outbox row and event in
//! one transaction, the task id answered at once), both tasks naming each other, and refused
//! in the contract's shape — unknown task, unfinished task, a task that moved nothing, a
//! second rollback, a read-only key — with nothing changed. No worker runs here; the moves
//! back are tested end to end in `crates/cutover/tests/it/rollback.rs`.

use crate::harness::{assert_error, task_id_of, Answer, TestApp};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use sqlx::PgPool;
use uuid::Uuid;

impl TestApp {
    async fn rollback(&self, task: &str) -> Answer {
        self.post_empty(&format!("/api/v1/tasks/{task}/rollback")).await
    }

    async fn sequence_put(&self, path: &str, body: &Value) -> Answer {
        Self::send(self.request(Method::PUT, path).json(body)).await
    }

    /// Everything a refused rollback must leave alone.
    async fn rows(&self) -> Vec<i64> {
        let mut counts = self.snapshot().await.to_vec();
        counts.push(self.count("SELECT count(*) FROM subscription_version_history").await);
        counts.push(self.count("SELECT count(*) FROM tasks WHERE rolled_back_by IS NOT NULL").await);
        counts
    }

    /// A LIVE plan `plan` with schedules `<plan>-s0` and `<plan>-s1` on version 1 and a version
    /// 2 published with NEVER (so nobody moved), then `<plan>-s0` migrated to version 2 at once
    /// by Stigg's per-subscription migrate: a finished task that moved one subscription.
    /// Answers that task's id.
    async fn finished_migration(&self, plan: &str) -> String {
        let body = json!({
            "name": plan, "label": plan, "currency": "EUR", "priceIds": [], "eligibleCustomerIds": [],
            "versionChangeBehaviour": "NEVER",
        });
        let (status, answer) = self
            .post(
                "/plans",
                &json!({ "id": plan, "name": plan, "label": plan,
            "currency": "EUR", "priceIds": [], "eligibleCustomerIds": [] }),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{answer}");
        let (status, answer) = self.sequence_put(&format!("/plans/{plan}"), &body).await;
        assert_eq!(status, StatusCode::OK, "{answer}");
        for i in 0..2 {
            let customer = format!("{plan}-c{i}");
            assert_eq!(self.create_customer(&customer).await.0, StatusCode::OK);
            self.subscribe(&format!("{plan}-s{i}"), &customer, plan).await;
        }
        let (status, answer) = self.sequence_put(&format!("/plans/{plan}"), &body).await;
        assert_eq!(status, StatusCode::OK, "{answer}");
        assert_eq!(answer["version"], 2);
        let (status, answer) = self
            .post(
                &format!("/api/v1/subscriptions/{plan}-s0/migrate"),
                &json!({ "subscriptionMigrationTime": "IMMEDIATE" }),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{answer}");
        let (_, tasks) = self.list_tasks(&format!("?taskType=SUBSCRIPTION_MIGRATION&planId={plan}")).await;
        let task = &tasks["data"][0];
        assert_eq!(task["status"], "COMPLETED", "{tasks}");
        task["id"].as_str().unwrap().to_owned()
    }
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn a_rollback_is_accepted_like_every_task_and_links_both_tasks(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let original = app.finished_migration("rb").await;
    let outbox_before = app.outbox_count().await;

    let (status, body) = app.rollback(&original).await;

    assert_eq!(status, StatusCode::OK, "{body}");
    let rollback = task_id_of(&body);
    assert_eq!(
        app.task_row(rollback).await,
        Some(("ROLLBACK_MIGRATION".to_owned(), "PENDING".to_owned(), Some("rb".to_owned()), None))
    );
    let jobs: Vec<Value> =
        sqlx::query_scalar("SELECT payload FROM outbox ORDER BY id").fetch_all(&app.pool).await.unwrap();
    assert_eq!(jobs.len() as i64, outbox_before + 1);
    assert_eq!(jobs.last().unwrap(), &json!({ "kind": "task", "taskId": rollback.to_string() }));
    // audited on both timelines, with who asked
    let prefix = &app.key[..12];
    let events: Vec<(String, String, Option<String>)> = sqlx::query_as(
        "SELECT task_id::text, kind, actor FROM task_events WHERE task_id IN ($1::uuid, $2) ORDER BY id",
    )
    .bind(Uuid::parse_str(&original).unwrap())
    .bind(rollback)
    .fetch_all(&app.pool)
    .await
    .unwrap();
    assert!(events.contains(&(rollback.to_string(), "accepted".into(), Some(prefix.to_owned()))), "{events:?}");
    assert!(events.contains(&(original.clone(), "rollback".into(), Some(prefix.to_owned()))), "{events:?}");

    let (_, shown) = app.get_task(&rollback.to_string()).await;
    assert_eq!(shown["data"]["taskType"], "ROLLBACK_MIGRATION");
    assert_eq!(shown["data"]["rollbackOf"], original.as_str());
    assert_eq!(shown["data"]["rolledBackBy"], Value::Null);
    assert_eq!(shown["data"]["status"], "PENDING");
    let (_, shown) = app.get_task(&original).await;
    assert_eq!(shown["data"]["rolledBackBy"], rollback.to_string());
    assert_eq!(shown["data"]["rollbackOf"], Value::Null);
    let listed = app.list_tasks("?taskType=ROLLBACK_MIGRATION").await;
    assert_eq!(listed.1["data"][0]["id"], rollback.to_string());

    // a second rollback of the same task is a conflict, and changes nothing
    let before = app.rows().await;
    let again = app.rollback(&original).await;
    assert_error(&again, StatusCode::CONFLICT, "TaskAlreadyRolledBack");
    assert!(again.1["message"].as_str().unwrap().contains(&rollback.to_string()), "{}", again.1);
    assert_eq!(app.rows().await, before);
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn rollbacks_that_cannot_be_are_refused_and_change_nothing(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let original = app.finished_migration("refused").await;
    // a publish nobody ran: PENDING, then CANCELED (finished, but it moved nobody)
    app.draft_plan("pending").await;
    let pending = app.publish_ok("pending").await.to_string();
    // an import, canceled: a type that never moves anybody
    let (status, body) = app
        .import_subscriptions(&json!({ "subscriptions": [
            { "id": "imported", "customerId": "refused-c0", "planId": "refused" }] }))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let import = task_id_of(&body).to_string();
    assert_eq!(app.post_empty(&format!("/api/v1/tasks/{import}/cancel")).await.0, StatusCode::OK);
    let before = app.rows().await;

    assert_error(&app.rollback(&Uuid::new_v4().to_string()).await, StatusCode::NOT_FOUND, "NotFound");
    assert_error(&app.rollback("not-a-task").await, StatusCode::NOT_FOUND, "NotFound");
    let other = app.other_environment().await;
    assert_error(&other.rollback(&original).await, StatusCode::NOT_FOUND, "NotFound");
    let reader = app.read_only().await;
    assert_error(&reader.rollback(&original).await, StatusCode::FORBIDDEN, "AccessDeniedError");
    let unfinished = app.rollback(&pending).await;
    assert_error(&unfinished, StatusCode::BAD_REQUEST, "BadUserInput");
    assert!(unfinished.1["message"].as_str().unwrap().contains("PENDING"), "{}", unfinished.1);
    let moved_nothing = app.rollback(&import).await;
    assert_error(&moved_nothing, StatusCode::BAD_REQUEST, "BadUserInput");
    assert!(moved_nothing.1["message"].as_str().unwrap().contains("IMPORT_SUBSCRIPTIONS"), "{}", moved_nothing.1);
    assert_eq!(app.rows().await, before, "a refused rollback changed rows");

    assert_eq!(app.post_empty(&format!("/api/v1/tasks/{pending}/cancel")).await.0, StatusCode::OK);
    let before = app.rows().await;
    let nobody = app.rollback(&pending).await;
    assert_error(&nobody, StatusCode::BAD_REQUEST, "BadUserInput");
    assert!(nobody.1["message"].as_str().unwrap().contains("moved no subscriptions"), "{}", nobody.1);
    assert_eq!(app.rows().await, before, "a refused rollback changed rows");
    // the original is still there to roll back
    assert_eq!(app.rollback(&original).await.0, StatusCode::OK);
}
