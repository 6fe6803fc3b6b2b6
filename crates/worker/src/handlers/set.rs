//! Planning ready tasks in sets. A worker that holds several task deliveries at once plans the
//! light ones — publishes that end in their planning: to new customers only, or to all
//! customers of a plan nobody is subscribed to — together, in one transaction and one
//! statement per step for the whole set: claim every task (`FOR UPDATE SKIP LOCKED`), run the
//! catalog checks for every draft, flip every draft to PUBLISHED, end every task, write the
//! whole set's timeline; then one commit. What a task costs in round trips and commits is
//! then shared by the set.
//!
//! The set only takes the plain case. A task it does not take is planned alone by
//! `run_task` once the set's transaction has ended, exactly as if it had arrived alone: a task
//! of another kind, one waiting for approval, one whose row another transaction holds, one the
//! catalog checks refuse, one whose draft is no longer a draft, a missing or already planned
//! one. So a refusal or a failure of one task never fails the others, each task's outcome is
//! decided by the one code path that decides it for a task alone, and a set whose statements
//! fail (or whose commit does) leaves every task to that path — redelivery stays harmless,
//! since a task planned by a set is planned, and `claim` answers `Nothing` for it.

use super::{publish, record_finished, record_planned_batches, JobError};
use crate::Context;
use domain::{MigrationType, TaskId, TaskSpec, TaskType};
use std::collections::HashSet;
use store::tasks::{self, Task};
use store::{catalog, plans, subscriptions};

/// Plans those of `ids` that a set takes, in one transaction, and answers the tasks it planned
/// (and ended); the caller plans the others alone. An error leaves every task to the caller.
#[tracing::instrument(skip_all, fields(tasks = ids.len(), task_ids = ?ids), err)]
pub async fn plan_set(ctx: &Context, ids: &[TaskId]) -> Result<Vec<TaskId>, JobError> {
    let mut tx = store::Work::begin_with_lock_timeout(&ctx.pool, ctx.settings.lock_timeout).await?;
    let claimed = tasks::claim_set(&mut tx, ids).await?;
    let mut taken: Vec<Taken<'_>> = claimed.iter().filter_map(takes).collect();
    // one publish per draft: a task holds its plan while in flight, so two of a set never
    // share one; should they, the second is planned alone and meets the draft already gone
    let mut drafts_seen = HashSet::new();
    taken.retain(|t| drafts_seen.insert(t.version));
    // a migration is planned here only when its plan has no subscription at all to move
    let migrations: Vec<_> =
        taken.iter().filter(|t| t.moves_all).map(|t| (t.task.environment(), t.plan.to_owned())).collect();
    if !migrations.is_empty() {
        let held = subscriptions::plans_with_subscriptions(&mut tx, &migrations).await?;
        taken.retain(|t| !t.moves_all || !held.contains(&(t.task.environment(), t.plan.to_owned())));
    }
    if taken.is_empty() {
        // nothing of the set was written: letting go of the claims is all there is to undo
        tx.rollback();
        return Ok(Vec::new());
    }

    let drafts: Vec<_> = taken.iter().map(|t| (t.task.environment(), t.version)).collect();
    let refused: HashSet<uuid::Uuid> =
        catalog::publish_refusals(&mut tx, &drafts).await?.into_iter().map(|(version, _)| version).collect();
    let to_publish: Vec<_> =
        taken.iter().filter(|t| !refused.contains(&t.version)).map(|t| (t.version, Some(t.task.id()))).collect();
    let published: HashSet<uuid::Uuid> = plans::publish_versions(&mut tx, &to_publish).await?.into_iter().collect();

    let planned: Vec<&Taken<'_>> = taken.iter().filter(|t| published.contains(&t.version)).collect();
    let ids: Vec<TaskId> = planned.iter().map(|t| t.task.id()).collect();
    for t in &planned {
        publish::record_published(&mut tx, t.task, t.number);
        if t.moves_all {
            // what planning its batches records when there is nobody to move
            record_planned_batches(&mut tx, t.task, 0, 0, &mut serde_json::json!({}));
        }
    }
    for ended in tasks::complete_planned_set(&mut tx, &ids).await? {
        if let Some(t) = planned.iter().find(|t| t.task.id == ended.id) {
            record_finished(&mut tx, t.task, ended.status());
        }
    }
    tx.commit(&ctx.hooks).await?;
    tracing::info!(planned = ids.len(), alone = claimed.len() - ids.len(), "publishes planned as a set");
    Ok(ids)
}

/// A task a set plans: a publish of `version` (version number `number`) that ends in its
/// planning.
struct Taken<'a> {
    task: &'a Task,
    plan: &'a str,
    version: uuid::Uuid,
    number: i32,
    /// ALL_CUSTOMERS: it ends in its planning only if its plan has nobody to move.
    moves_all: bool,
}

/// Whether a set may plan `task`: a publish not waiting for an approval, either to new
/// customers only (nothing moves) or to all customers with no migration policy (nothing
/// moves when the plan has no subscription, which the set then checks).
fn takes(task: &Task) -> Option<Taken<'_>> {
    if task.task_type() != TaskType::PublishPlan || task.awaits_approval() {
        return None;
    }
    let moves_all = match task.spec() {
        Ok(TaskSpec::PublishPlan { migration_type: MigrationType::NewCustomers }) => false,
        Ok(TaskSpec::PublishPlan { migration_type: MigrationType::AllCustomers })
            if matches!(task.policy(), Ok(None)) =>
        {
            true
        }
        _ => return None,
    };
    match (task.target_version_id, task.target_version_number, task.plan_id.as_deref()) {
        (Some(version), Some(number), Some(plan)) => Some(Taken { task, plan, version, number, moves_all }),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use crate::handlers::run_task;
    use domain::EnvironmentId;
    use sqlx::PgPool;
    use std::sync::Arc;
    use store::tasks::{NewTask, PolicyPin};

    fn context(pool: PgPool) -> Context {
        Arc::new(crate::WorkerContext {
            pool,
            amqp_url: String::new(),
            topology: queue::Topology::new("unused"),
            settings: crate::WorkerSettings::default(),
            hooks: crate::hooks(None),
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
        tasks::insert(&mut conn, &new).await.unwrap().id()
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
        sqlx::query_scalar("SELECT status FROM plan_versions WHERE id = $1")
            .bind(version)
            .fetch_one(pool)
            .await
            .unwrap()
    }

    #[sqlx::test(migrator = "store::MIGRATOR")]
    async fn a_set_plans_the_plain_publishes_and_leaves_every_other_task_to_be_planned_alone(pool: PgPool) {
        let ctx = context(pool.clone());
        let env = environment(&pool).await;
        let (a, b) = (draft(&pool, env, "a", None).await, draft(&pool, env, "b", None).await);
        let child = draft(&pool, env, "child", Some("base")).await;
        draft(&pool, env, "base", None).await;
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
        let task_held = publish(&pool, env, "held", held, new).await;
        let task_all = publish(&pool, env, "all", all, MigrationType::AllCustomers).await;
        let task_empty = publish(&pool, env, "empty", empty, MigrationType::AllCustomers).await;
        let missing = TaskId::new();
        // another transaction holds one task's row (an operator cancelling it, say)
        let mut holder = pool.begin().await.unwrap();
        sqlx::query("SELECT 1 FROM tasks WHERE id = $1 FOR UPDATE")
            .bind(task_held.0)
            .execute(&mut *holder)
            .await
            .unwrap();

        let set = [task_a, missing, task_child, task_held, task_all, task_b, task_empty];
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
        for (task, version) in [(task_child, child), (task_held, held), (task_all, all)] {
            assert_eq!(row(&pool, task).await, ("PENDING".into(), None, 0, false));
            assert_eq!(version_status(&pool, version).await, "DRAFT");
        }

        // planned alone, each meets its own outcome
        assert!(matches!(run_task(&ctx, task_held).await, Err(JobError::Busy)));
        holder.rollback().await.unwrap();
        run_task(&ctx, task_held).await.unwrap();
        run_task(&ctx, task_child).await.unwrap();
        run_task(&ctx, task_all).await.unwrap();
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
}
