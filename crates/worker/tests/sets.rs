//! Planning task deliveries in sets (`handlers::set`), against real Postgres and RabbitMQ: what
//! a set plans, what it leaves to be planned alone, a set whose commit fails, and the consumer
//! taking deliveries that wait together as sets and settling each by its own outcome.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use domain::{EnvironmentId, Job, MigrationType, TaskId, TaskSpec};
use queue::lapin::options::{BasicGetOptions, QueueBindOptions, QueueDeclareOptions};
use queue::lapin::types::FieldTable;
use queue::publisher::Outgoing;
use queue::Publisher;
use sqlx::PgPool;
use std::sync::Arc;
use std::time::Duration;
use store::tasks::{NewTask, PolicyPin};
use tokio_util::sync::CancellationToken;
use worker::handlers::set::plan_set;
use worker::handlers::JobError;
use worker::{Context, WorkerContext, WorkerSettings};

/// Plans one task alone, as the consumer does with a job the set did not plan.
async fn run_task(ctx: &Context, task: TaskId) -> Result<(), JobError> {
    worker::handlers::run(ctx, Job::Task { task_id: task }).await
}

fn context(pool: PgPool) -> Context {
    Arc::new(WorkerContext {
        pool,
        amqp_url: String::new(),
        topology: queue::Topology::new("unused"),
        settings: WorkerSettings::default(),
        hooks: worker::hooks(None),
    })
}

/// An environment with a product, for `draft` and `publish`.
async fn environment(pool: &PgPool) -> EnvironmentId {
    let env = uuid::Uuid::new_v4();
    sqlx::query("INSERT INTO environments (id, name) VALUES ($1, 'sets')").bind(env).execute(pool).await.unwrap();
    sqlx::query("INSERT INTO products (environment_id, id, display_name) VALUES ($1, 'p', 'P')")
        .bind(env)
        .execute(pool)
        .await
        .unwrap();
    EnvironmentId(env)
}

/// Plan `plan` with a draft version 1 (whose base plan is `parent`), answering the draft.
async fn draft(pool: &PgPool, env: EnvironmentId, plan: &str, parent: Option<&str>) -> uuid::Uuid {
    sqlx::query("INSERT INTO plans (environment_id, id, product_id) VALUES ($1, $2, 'p')")
        .bind(env.0)
        .bind(plan)
        .execute(pool)
        .await
        .unwrap();
    sqlx::query_scalar(
        "INSERT INTO plan_versions (id, environment_id, plan_id, version_number, status, display_name, parent_plan_id)
         VALUES (gen_random_uuid(), $1, $2, 1, 'DRAFT', $2, $3) RETURNING id",
    )
    .bind(env.0)
    .bind(plan)
    .bind(parent)
    .fetch_one(pool)
    .await
    .unwrap()
}

/// A PENDING publish of `plan`'s draft `version`, as the api accepts it.
async fn publish(pool: &PgPool, env: EnvironmentId, plan: &str, version: uuid::Uuid, to: MigrationType) -> TaskId {
    let new = NewTask {
        id: TaskId::new(),
        environment: env,
        plan_id: Some(plan.to_owned()),
        spec: TaskSpec::PublishPlan { migration_type: to },
        target_version_id: Some(version),
        target_version_number: Some(1),
        idempotency_key: None,
        max_attempts: 5,
        total: 0,
        policy: PolicyPin::None,
        requested_by: None,
    };
    let mut conn = pool.acquire().await.unwrap();
    store::tasks::insert(&mut conn, &new).await.unwrap().id()
}

/// A task's status, error code, attempts and whether it is planned.
async fn row(pool: &PgPool, task: TaskId) -> (String, Option<String>, i32, bool) {
    sqlx::query_as("SELECT status, error_code, attempts, planned_at IS NOT NULL FROM tasks WHERE id = $1")
        .bind(task.0)
        .fetch_one(pool)
        .await
        .unwrap()
}

async fn timeline(pool: &PgPool, task: TaskId) -> Vec<String> {
    sqlx::query_scalar("SELECT kind FROM task_events WHERE task_id = $1 ORDER BY id")
        .bind(task.0)
        .fetch_all(pool)
        .await
        .unwrap()
}

async fn version_status(pool: &PgPool, version: uuid::Uuid) -> String {
    sqlx::query_scalar("SELECT status FROM plan_versions WHERE id = $1").bind(version).fetch_one(pool).await.unwrap()
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn a_set_plans_the_plain_publishes_and_leaves_every_other_task_to_be_planned_alone(pool: PgPool) {
    let ctx = context(pool.clone());
    let env = environment(&pool).await;
    let (a, b) = (draft(&pool, env, "a", None).await, draft(&pool, env, "b", None).await);
    let child = draft(&pool, env, "child", Some("base")).await;
    draft(&pool, env, "base", None).await;
    // a child of a published base plan passes the catalog checks, which only a task planned
    // alone runs
    let live = draft(&pool, env, "live", None).await;
    sqlx::query("UPDATE plan_versions SET status = 'PUBLISHED' WHERE id = $1").bind(live).execute(&pool).await.unwrap();
    let grown = draft(&pool, env, "grown", Some("live")).await;
    let (held, all) = (draft(&pool, env, "held", None).await, draft(&pool, env, "all", None).await);
    let empty = draft(&pool, env, "empty", None).await;
    // "all" has a subscriber, so its migration is planned alone; "empty" has none
    sqlx::query("INSERT INTO customers (environment_id, id) VALUES ($1, 'c')")
        .bind(env.0)
        .execute(&pool)
        .await
        .unwrap();
    sqlx::query(
        "INSERT INTO subscriptions (environment_id, id, customer_id, plan_id, plan_version_id, status, billing_period,
            start_date) VALUES ($1, 's', 'c', 'all', $2, 'ACTIVE', 'MONTHLY', now())",
    )
    .bind(env.0)
    .bind(all)
    .execute(&pool)
    .await
    .unwrap();
    let new = MigrationType::NewCustomers;
    let task_a = publish(&pool, env, "a", a, new).await;
    let task_b = publish(&pool, env, "b", b, new).await;
    let task_child = publish(&pool, env, "child", child, new).await;
    let task_grown = publish(&pool, env, "grown", grown, new).await;
    let task_held = publish(&pool, env, "held", held, new).await;
    let task_all = publish(&pool, env, "all", all, MigrationType::AllCustomers).await;
    let task_empty = publish(&pool, env, "empty", empty, MigrationType::AllCustomers).await;
    let missing = TaskId::new();
    // another transaction holds one task's row (an operator cancelling it, say)
    let mut holder = pool.begin().await.unwrap();
    sqlx::query("SELECT 1 FROM tasks WHERE id = $1 FOR UPDATE").bind(task_held.0).execute(&mut *holder).await.unwrap();

    let set = [task_a, missing, task_child, task_held, task_all, task_b, task_empty, task_grown];
    let mut planned = plan_set(&ctx, &set).await.unwrap();
    planned.sort();
    let mut expected = vec![task_a, task_b, task_empty];
    expected.sort();
    assert_eq!(planned, expected, "the set plans exactly the plain publishes and the empty migration");
    for (task, version) in [(task_a, a), (task_b, b)] {
        assert_eq!(row(&pool, task).await, ("COMPLETED".into(), None, 1, true));
        assert_eq!(timeline(&pool, task).await, ["published", "finished"]);
        assert_eq!(version_status(&pool, version).await, "PUBLISHED");
    }
    assert_eq!(row(&pool, task_empty).await, ("COMPLETED".into(), None, 1, true));
    assert_eq!(timeline(&pool, task_empty).await, ["published", "planned", "finished"]);
    assert_eq!(version_status(&pool, empty).await, "PUBLISHED");
    // the others are as they were: nothing of the set touched them
    for (task, version) in [(task_child, child), (task_held, held), (task_all, all), (task_grown, grown)] {
        assert_eq!(row(&pool, task).await, ("PENDING".into(), None, 0, false));
        assert_eq!(version_status(&pool, version).await, "DRAFT");
    }

    // planned alone, each meets its own outcome
    assert!(matches!(run_task(&ctx, task_held).await, Err(JobError::Busy)));
    holder.rollback().await.unwrap();
    run_task(&ctx, task_held).await.unwrap();
    run_task(&ctx, task_child).await.unwrap();
    run_task(&ctx, task_all).await.unwrap();
    run_task(&ctx, task_grown).await.unwrap();
    assert_eq!(row(&pool, task_grown).await, ("COMPLETED".into(), None, 1, true));
    assert_eq!(version_status(&pool, grown).await, "PUBLISHED");
    assert!(matches!(run_task(&ctx, missing).await, Err(JobError::Permanent { .. })));
    assert_eq!(row(&pool, task_held).await, ("COMPLETED".into(), None, 1, true));
    assert_eq!(
        row(&pool, task_child).await,
        ("FAILED".into(), Some("PlanCannotBePublishWhenBasePlanIsDraft".into()), 1, true)
    );
    assert_eq!(version_status(&pool, child).await, "DRAFT");
    // alone, the migration with a subscriber plans (that subscriber is on the version published)
    assert_eq!(row(&pool, task_all).await.0, "COMPLETED");
    assert_eq!(timeline(&pool, task_all).await, ["published", "planned", "finished"]);

    // the same set delivered again plans nothing and changes nothing
    let before: Vec<(String, i32, i64)> = sqlx::query_as(
        "SELECT status, attempts, (SELECT count(*) FROM task_events e WHERE e.task_id = t.id) FROM tasks t ORDER BY id",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    assert!(plan_set(&ctx, &set).await.unwrap().is_empty());
    let after: Vec<(String, i32, i64)> = sqlx::query_as(
        "SELECT status, attempts, (SELECT count(*) FROM task_events e WHERE e.task_id = t.id) FROM tasks t ORDER BY id",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(before, after);
}

/// A task's timeline as a person reads it — kind, message, actor, data, in order — with the
/// plan's name in messages written `<plan>`, and whether each line was written no earlier than
/// the one before it and no later than the task finished.
async fn timeline_read(
    pool: &PgPool,
    task: TaskId,
    plan: &str,
) -> Vec<(String, String, Option<String>, serde_json::Value)> {
    let lines: Vec<(String, String, Option<String>, serde_json::Value, bool)> = sqlx::query_as(
        "SELECT e.kind, e.message, e.actor, e.data,
                e.created_at >= coalesce(lag(e.created_at) OVER (ORDER BY e.id), e.created_at)
                AND e.created_at <= t.finished_at
         FROM task_events e JOIN tasks t ON t.id = e.task_id WHERE e.task_id = $1 ORDER BY e.id",
    )
    .bind(task.0)
    .fetch_all(pool)
    .await
    .unwrap();
    assert!(lines.iter().all(|l| l.4), "lines in the order they were written, none after the end: {lines:?}");
    lines.into_iter().map(|(k, m, a, d, _)| (k, m.replace(&format!("`{plan}`"), "<plan>"), a, d)).collect()
}

/// The types of the webhook events written for `task` and for its plan's version published.
async fn webhook_events(pool: &PgPool, task: TaskId, plan: &str) -> Vec<String> {
    sqlx::query_scalar(
        "SELECT event_type FROM webhook_events
         WHERE (event_type LIKE 'task.%' AND body LIKE '%' || $1::text || '%')
            OR (event_type = 'plan.version_published' AND body LIKE '%\"' || $2 || '\"%')
         ORDER BY event_type",
    )
    .bind(task.0)
    .bind(plan)
    .fetch_all(pool)
    .await
    .unwrap()
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn a_set_writes_the_timeline_and_webhook_events_its_tasks_would_have_written_alone(pool: PgPool) {
    let ctx = context(pool.clone());
    let env = environment(&pool).await;
    sqlx::query(
        "INSERT INTO webhook_endpoints (id, environment_id, url, events, secret)
         VALUES (gen_random_uuid(), $1, 'http://127.0.0.1:9/hook', ARRAY['task.completed', 'plan.version_published'], 's')",
    )
    .bind(env.0)
    .execute(&pool)
    .await
    .unwrap();
    let mut tasks = Vec::new();
    for plan in ["new-set", "new-alone", "all-set", "all-alone"] {
        let version = draft(&pool, env, plan, None).await;
        let to = if plan.starts_with("new") { MigrationType::NewCustomers } else { MigrationType::AllCustomers };
        tasks.push((plan, version, publish(&pool, env, plan, version, to).await));
    }
    let in_set: Vec<TaskId> = tasks.iter().filter(|(plan, ..)| plan.ends_with("set")).map(|t| t.2).collect();
    assert_eq!(plan_set(&ctx, &in_set).await.unwrap().len(), 2);
    for (plan, _, task) in &tasks {
        if plan.ends_with("alone") {
            run_task(&ctx, *task).await.unwrap();
        }
    }

    for kind in ["new", "all"] {
        let [(set_plan, _, set_task), (alone_plan, _, alone_task)] =
            [0, 1].map(|i| tasks.iter().filter(|(plan, ..)| plan.starts_with(kind)).nth(i).copied().unwrap());
        let from_set = timeline_read(&pool, set_task, set_plan).await;
        assert_eq!(from_set, timeline_read(&pool, alone_task, alone_plan).await, "{kind}: the same timeline");
        let kinds: Vec<&str> = from_set.iter().map(|l| l.0.as_str()).collect();
        let expected: &[&str] =
            if kind == "new" { &["published", "finished"] } else { &["published", "planned", "finished"] };
        assert_eq!(kinds, expected);
        assert_eq!(row(&pool, set_task).await, row(&pool, alone_task).await);
        assert_eq!(
            webhook_events(&pool, set_task, set_plan).await,
            ["plan.version_published", "task.completed"],
            "{kind}: the version published and the task's end, as alone"
        );
        assert_eq!(webhook_events(&pool, alone_task, alone_plan).await, ["plan.version_published", "task.completed"]);
    }
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn a_set_whose_commit_fails_leaves_every_task_to_be_planned_alone(pool: PgPool) {
    let ctx = context(pool.clone());
    let env = environment(&pool).await;
    let (good, doomed) = (draft(&pool, env, "good", None).await, draft(&pool, env, "doomed", None).await);
    let task_good = publish(&pool, env, "good", good, MigrationType::NewCustomers).await;
    let task_doomed = publish(&pool, env, "doomed", doomed, MigrationType::NewCustomers).await;
    // a check Postgres runs only at commit refuses the end of one task of the set
    sqlx::raw_sql(
        "CREATE FUNCTION refuse_doomed() RETURNS trigger LANGUAGE plpgsql AS $$
         BEGIN
            IF NEW.plan_id = 'doomed' AND NEW.status = 'COMPLETED' THEN
                RAISE EXCEPTION 'refused at commit';
            END IF;
            RETURN NEW;
         END $$;
         CREATE CONSTRAINT TRIGGER refuse_doomed AFTER UPDATE ON tasks
            DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION refuse_doomed();",
    )
    .execute(&pool)
    .await
    .unwrap();

    assert!(plan_set(&ctx, &[task_good, task_doomed]).await.is_err(), "the commit fails");
    for (task, version) in [(task_good, good), (task_doomed, doomed)] {
        assert_eq!(row(&pool, task).await, ("PENDING".into(), None, 0, false), "nothing of the set remains");
        assert!(timeline(&pool, task).await.is_empty());
        assert_eq!(version_status(&pool, version).await, "DRAFT");
    }
    // alone, the good one plans; the doomed one fails its own attempt, to be retried
    run_task(&ctx, task_good).await.unwrap();
    assert_eq!(row(&pool, task_good).await, ("COMPLETED".into(), None, 1, true));
    assert_eq!(version_status(&pool, good).await, "PUBLISHED");
    assert!(run_task(&ctx, task_doomed).await.is_err());
    assert_eq!(row(&pool, task_doomed).await, ("PENDING".into(), None, 0, false));
}
#[sqlx::test(migrator = "store::MIGRATOR")]
async fn task_deliveries_waiting_together_are_planned_in_sets_and_each_settled_by_its_own_outcome(pool: sqlx::PgPool) {
    let mut topology = queue::Topology::new(format!("ut.{}", &uuid::Uuid::new_v4().simple().to_string()[..12]));
    topology.queue_expires_ms = Some(300_000);
    let amqp_url = "amqp://guest:guest@127.0.0.1:5672/%2f".to_owned();
    let connection = queue::connect(&amqp_url).await.unwrap();
    let publisher = Publisher::open(&connection).await.unwrap();
    topology.declare(publisher.channel()).await.unwrap();
    let channel = connection.create_channel().await.unwrap();
    let dead_tap = format!("{}.tap.dead", topology.prefix);
    let exclusive = QueueDeclareOptions { exclusive: true, ..QueueDeclareOptions::default() };
    channel.queue_declare(&dead_tap, exclusive, FieldTable::default()).await.unwrap();
    channel
        .queue_bind(&dead_tap, &topology.dead_exchange(), "", QueueBindOptions::default(), FieldTable::default())
        .await
        .unwrap();

    // twelve plain publishes, one whose base plan is a draft, and a task that does not exist
    let env = environment(&pool).await;
    let mut plain = Vec::new();
    for i in 0..12 {
        let plan = format!("p{i}");
        let version = draft(&pool, env, &plan, None).await;
        plain.push(publish(&pool, env, &plan, version, MigrationType::NewCustomers).await);
    }
    draft(&pool, env, "base", None).await;
    let child_version = draft(&pool, env, "child", Some("base")).await;
    let child = publish(&pool, env, "child", child_version, MigrationType::NewCustomers).await;
    let missing = TaskId::new();
    // all waiting before the consumer starts, so that they are taken together
    for task in plain.iter().chain([&child, &missing]) {
        let payload = serde_json::to_vec(&Job::Task { task_id: *task }).unwrap();
        let exchange = topology.exchange();
        let outgoing = Outgoing { exchange: &exchange, routing_key: "task", payload: &payload, attempt: 1 };
        publisher.publish(&outgoing).await.unwrap();
    }

    let ctx = Arc::new(WorkerContext {
        pool: pool.clone(),
        amqp_url,
        topology: topology.clone(),
        settings: WorkerSettings {
            worker_id: format!("{}-worker", topology.prefix),
            shutdown_grace: Duration::from_secs(5),
            ..WorkerSettings::default()
        },
        hooks: worker::hooks(None),
    });
    let cancel = CancellationToken::new();
    let consumer = tokio::spawn(worker::run_consumer(ctx.clone(), cancel.clone()));

    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let ended: i64 = sqlx::query_scalar("SELECT count(*) FROM tasks WHERE status IN ('COMPLETED', 'FAILED')")
            .fetch_one(&pool)
            .await
            .unwrap();
        if ended == 13 {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "{ended} of 13 tasks ended");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for task in &plain {
        assert_eq!(row(&pool, *task).await, ("COMPLETED".into(), None, 1, true));
        assert_eq!(timeline(&pool, *task).await, ["published", "finished"]);
    }
    assert_eq!(
        row(&pool, child).await,
        ("FAILED".into(), Some("PlanCannotBePublishWhenBasePlanIsDraft".into()), 1, true)
    );
    // tasks planned in one transaction share its start: fewer starts than tasks means sets
    let starts: i64 = sqlx::query_scalar("SELECT count(DISTINCT started_at) FROM tasks WHERE id = ANY($1)")
        .bind(plain.iter().map(|t| t.0).collect::<Vec<_>>())
        .fetch_one(&pool)
        .await
        .unwrap();
    assert!(starts < 12, "every task was planned alone ({starts} starts)");
    // the missing task is given up on and parked for operators
    let mut dead = Vec::new();
    for _ in 0..100 {
        dead = drain(&channel, &dead_tap).await;
        if !dead.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(dead, [Job::Task { task_id: missing }]);

    cancel.cancel();
    tokio::time::timeout(Duration::from_secs(10), consumer).await.unwrap().unwrap();
    let _ = connection.close(200, "done").await;
}

/// Every message waiting in `queue`, as the job it carries.
async fn drain(channel: &queue::lapin::Channel, queue: &str) -> Vec<Job> {
    let mut seen = Vec::new();
    let options = BasicGetOptions { no_ack: true };
    while let Some(message) = channel.basic_get(queue, options).await.unwrap() {
        seen.push(serde_json::from_slice(&message.delivery.data).unwrap());
    }
    seen
}
