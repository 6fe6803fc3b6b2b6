//! Publishes accepted together (`api::accepting`): a set written by one statement accepts
//! exactly what each of its publishes would have been alone, with the same rows, and writes
//! nothing of the others; publishes sent at once get the answers they would get one by one.

use crate::harness::{assert_error, task_id_of, TestApp, ENV_A};
use domain::{EnvironmentId, MigrationType, TaskId, TaskSpec};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use sqlx::{Connection, PgPool};
use std::collections::HashSet;
use store::api_keys::Scope;
use store::tasks::{self, Accepted, NewPublish, PolicyPin};
use uuid::Uuid;

fn publish_of<'a>(env: EnvironmentId, plan: &'a str, key: Option<&str>, policy: PolicyPin) -> NewPublish<'a> {
    NewPublish {
        id: TaskId::new(),
        environment: env,
        plan_id: plan,
        spec: TaskSpec::PublishPlan { migration_type: MigrationType::AllCustomers },
        idempotency_key: key.map(str::to_owned),
        max_attempts: 5,
        policy,
    }
}

fn event() -> Accepted<'static> {
    Accepted {
        message: "publish of version {version} with ALL_CUSTOMERS",
        actor: Some("ck_test"),
        data: json!({ "migrationType": "ALL_CUSTOMERS" }),
    }
}

/// What a user reads of an accepted task with SQL, its id left out.
async fn written(pool: &PgPool, id: Uuid) -> Value {
    sqlx::query_scalar(
        "SELECT jsonb_build_object(
            'task', (SELECT to_jsonb(t) - 'id' - 'seq' - 'created_at' - 'updated_at' - 'run_after' - 'target_version_id'
                     FROM tasks t WHERE t.id = $1),
            'events', (SELECT jsonb_agg(jsonb_build_array(kind, message, actor, data)) FROM task_events WHERE task_id = $1),
            'jobs', (SELECT count(*) FROM outbox WHERE payload = jsonb_build_object('kind', 'task', 'taskId', $1::text)))",
    )
    .bind(id)
    .fetch_one(pool)
    .await
    .unwrap()
}

/// What `written` read of another plan's task, as it reads for `plan`.
fn as_plan(mut row: Value, plan: &str) -> Value {
    row["task"]["plan_id"] = json!(plan);
    row
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn a_set_accepts_what_each_publish_would_alone_with_the_same_rows_and_writes_nothing_of_the_rest(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let admin = app.with_key(store::api_keys::create_key(&app.pool, ENV_A, Scope::Admin, None).await.unwrap().secret);
    for plan in ["alone", "plain", "keyed", "gated", "gated-alone", "held"] {
        app.draft_plan(plan).await;
    }
    app.published_plan("no-draft").await;
    let gate = json!({ "noticePeriod": "P7D", "requireApproval": true });
    for plan in ["gated", "gated-alone"] {
        let path = format!("/api/v1/plans/{plan}/migration-policy");
        let (status, body) = TestApp::send(admin.request(Method::PUT, &path).json(&gate)).await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    let held = app.publish_ok("held").await;
    let env: Uuid = sqlx::query_scalar("SELECT id FROM environments WHERE name = $1")
        .bind(ENV_A)
        .fetch_one(&app.pool)
        .await
        .unwrap();
    let env = EnvironmentId(env);
    // the rows a publish accepted alone writes, for comparison
    let mut conn = app.pool.acquire().await.unwrap();
    let alone = publish_of(env, "alone", None, PolicyPin::InForce);
    let gated_alone = publish_of(env, "gated-alone", None, PolicyPin::InForce);
    for new in [&alone, &gated_alone] {
        assert_eq!(tasks::accept_publish(&mut conn, new, &event()).await.unwrap(), Some(1));
    }
    let before = app.snapshot().await;

    let set = [
        publish_of(env, "plain", None, PolicyPin::InForce),
        publish_of(env, "keyed", Some("key-1"), PolicyPin::InForce),
        publish_of(env, "gated", None, PolicyPin::InForce),
        // refused alone: its plan held, by an earlier task or by one of this set; no draft
        publish_of(env, "held", None, PolicyPin::InForce),
        publish_of(env, "plain", None, PolicyPin::InForce),
        publish_of(env, "no-draft", None, PolicyPin::InForce),
        publish_of(env, "missing", None, PolicyPin::InForce),
    ];
    let rows: Vec<_> = set.iter().map(|new| (new.clone(), event())).collect();
    let accepted = tasks::accept_publishes(&mut conn, &rows).await.unwrap();

    let ids: HashSet<Uuid> = accepted.iter().map(|(id, _)| *id).collect();
    assert_eq!(ids, HashSet::from([set[0].id.0, set[1].id.0, set[2].id.0]));
    assert!(accepted.iter().all(|(_, version)| *version == 1), "{accepted:?}");
    let [tasks_before, jobs_before, events_before, versions_before] = before;
    assert_eq!(app.snapshot().await, [tasks_before + 3, jobs_before + 3, events_before + 3, versions_before]);

    // each as it would have been alone: task row, `accepted` event, one job
    let reference = written(&app.pool, alone.id.0).await;
    assert_eq!(reference["jobs"], 1);
    assert_eq!(reference["events"][0][1], "publish of version 1 with ALL_CUSTOMERS");
    assert_eq!(written(&app.pool, set[0].id.0).await, as_plan(reference.clone(), "plain"));
    let mut keyed = as_plan(reference, "keyed");
    keyed["task"]["idempotency_key"] = json!("key-1");
    assert_eq!(written(&app.pool, set[1].id.0).await, keyed);
    let gated = written(&app.pool, gated_alone.id.0).await;
    assert_eq!(gated["task"]["approval_state"], "PENDING");
    assert_eq!(gated["task"]["policy"], gate);
    assert_eq!(written(&app.pool, set[2].id.0).await, as_plan(gated, "gated"));
    // the earlier holder is untouched
    assert_eq!(app.task_row(held).await.unwrap().1, "PENDING");
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn publishes_sent_at_once_get_the_answers_they_would_get_one_by_one(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let plans: Vec<String> = (0..16).map(|i| format!("burst-{i}")).collect();
    for plan in plans.iter().chain([&"contested".to_owned(), &"keyed".to_owned()]) {
        app.draft_plan(plan).await;
    }
    app.published_plan("no-draft").await;
    let body = json!({ "migrationType": "NEW_CUSTOMERS" });

    let distinct = futures::future::join_all(plans.iter().map(|plan| app.publish(plan, &body)));
    let contested = futures::future::join_all((0..4).map(|_| app.publish("contested", &body)));
    let keyed = futures::future::join_all((0..3).map(|_| app.publish_with_idempotency_key("keyed", &body, "k")));
    let no_draft = futures::future::join_all((0..2).map(|_| app.publish("no-draft", &body)));
    let (distinct, contested, keyed, no_draft) = tokio::join!(distinct, contested, keyed, no_draft);

    let mut ids = HashSet::new();
    for (status, body) in &distinct {
        assert_eq!(*status, StatusCode::OK, "{body}");
        ids.insert(task_id_of(body));
    }
    assert_eq!(ids.len(), 16);
    let won: Vec<_> = contested.iter().filter(|(status, _)| *status == StatusCode::OK).collect();
    assert_eq!(won.len(), 1, "{contested:?}");
    for answer in contested.iter().filter(|(status, _)| *status != StatusCode::OK) {
        assert_error(answer, StatusCode::BAD_REQUEST, "ObjectAlreadyBeingUsedByAnotherRequestError");
    }
    // one task for the key: every answer names it, or says the first is still being accepted
    let named: HashSet<Uuid> =
        keyed.iter().filter(|(status, _)| *status == StatusCode::OK).map(|(_, body)| task_id_of(body)).collect();
    assert_eq!(named.len(), 1, "{keyed:?}");
    for answer in keyed.iter().filter(|(status, _)| *status != StatusCode::OK) {
        assert_error(answer, StatusCode::BAD_REQUEST, "ObjectAlreadyBeingUsedByAnotherRequestError");
    }
    for answer in &no_draft {
        assert_error(answer, StatusCode::BAD_REQUEST, "PackageAlreadyPublished");
    }
    // 16 + the contested plan's one + the key's one: each with its job and `accepted` event
    assert_eq!(app.task_count().await, 18);
    assert_eq!(app.outbox_count().await, 18);
    assert_eq!(app.count("SELECT count(*) FROM task_events WHERE kind = 'accepted'").await, 18);
    let answered: HashSet<Uuid> =
        ids.into_iter().chain(named).chain(won.iter().map(|(_, body)| task_id_of(body))).collect();
    let stored: Vec<Uuid> = sqlx::query_scalar("SELECT id FROM tasks").fetch_all(&app.pool).await.unwrap();
    assert_eq!(answered, stored.into_iter().collect());
    // each of the 25 went through a set once (those it did not accept went on alone)
    let text = app.anonymous(Method::GET, "/metrics").send().await.unwrap().text().await.unwrap();
    assert_eq!(crate::observability::sample(&text, "cutover_accept_set_size_sum", &[]), Some(25.0), "{text}");
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn a_set_postgres_refuses_is_accepted_again_request_by_request(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let plans: Vec<String> = (0..24).map(|i| format!("ok-{i}")).collect();
    for plan in plans.iter().chain([&"poison".to_owned()]) {
        app.draft_plan(plan).await;
    }
    // Postgres refuses any statement that inserts the task of plan `poison`
    sqlx::query(
        "CREATE FUNCTION refuse_poison() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'poison'; END $$",
    )
    .execute(&app.pool)
    .await
    .unwrap();
    sqlx::query(
        "CREATE TRIGGER refuse_poison BEFORE INSERT ON tasks FOR EACH ROW WHEN (NEW.plan_id = 'poison')
         EXECUTE FUNCTION refuse_poison()",
    )
    .execute(&app.pool)
    .await
    .unwrap();
    // the acceptor's four writers wait on the outbox while later publishes gather behind them;
    // the gate and its watch on connections of their own, outside the api's pool
    let options = app.pool.connect_options();
    let mut gate = sqlx::PgConnection::connect_with(&options).await.unwrap();
    let mut watch = sqlx::PgConnection::connect_with(&options).await.unwrap();
    sqlx::raw_sql("BEGIN; LOCK TABLE outbox IN EXCLUSIVE MODE").execute(&mut gate).await.unwrap();
    let body = json!({ "migrationType": "NEW_CUSTOMERS" });
    let publish = |plan: String| {
        let (app, body) = (app.clone(), body.clone());
        tokio::spawn(async move { (plan.clone(), app.publish(&plan, &body).await) })
    };
    // one publish at a time until each of the four writers waits on the outbox with its own
    // (sent together, they could share one writer's set)
    let waiting = "SELECT count(*) FROM pg_locks
                   WHERE database = (SELECT oid FROM pg_database WHERE datname = current_database())
                     AND relation = 'outbox'::regclass AND NOT granted";
    let mut sent = Vec::new();
    for (blocked, plan) in plans[..4].iter().enumerate() {
        sent.push(publish(plan.clone()));
        // a deadline generous enough for a machine running the whole suite at once
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(90);
        while sqlx::query_scalar::<_, i64>(waiting).fetch_one(&mut watch).await.unwrap() <= blocked as i64 {
            assert!(std::time::Instant::now() < deadline, "writer {blocked} never waited on the outbox");
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
    }
    sent.extend(plans[4..].iter().cloned().chain(["poison".to_owned()]).map(publish));
    // nothing outside the api shows the queued publishes: give them a moment to reach it
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    sqlx::query("COMMIT").execute(&mut gate).await.unwrap();

    for handle in sent {
        let (plan, answer) = handle.await.unwrap();
        if plan == "poison" {
            assert_error(&answer, StatusCode::INTERNAL_SERVER_ERROR, "InternalError");
        } else {
            assert_eq!(answer.0, StatusCode::OK, "{plan}: {}", answer.1);
        }
    }
    assert_eq!(app.task_count().await, 24);
    assert_eq!(app.outbox_count().await, 24);
    assert_eq!(app.count("SELECT count(*) FROM tasks WHERE plan_id = 'poison'").await, 0);
    // the poisoned set was more than one publish: its others were accepted again alone
    let text = app.anonymous(Method::GET, "/metrics").send().await.unwrap().text().await.unwrap();
    let single = crate::observability::sample(&text, "cutover_accept_set_size_bucket", &[("le", "1")]);
    let sets = crate::observability::sample(&text, "cutover_accept_set_size_count", &[]);
    assert!(single < sets, "every set was a single publish: {text}");
}
