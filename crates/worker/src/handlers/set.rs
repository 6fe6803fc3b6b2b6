//! Planning ready tasks in sets. A worker that holds several task deliveries at once plans the
//! light ones — publishes that end in their planning: to new customers only, or to all
//! customers of a plan nobody is subscribed to — together, in one transaction and one
//! statement per step for the whole set: claim every task (`FOR UPDATE SKIP LOCKED`), flip
//! every draft no catalog check could refuse (no base plan, no compatible add-on) to
//! PUBLISHED, end every task writing the whole set's timeline with it; then one commit. What a task
//! costs in round trips and commits is then shared by the set.
//!
//! The set only takes the plain case. A task it does not take is planned alone by
//! `run_task` once the set's transaction has ended, exactly as if it had arrived alone: a task
//! of another kind, one waiting for approval, one whose row another transaction holds, one
//! whose draft has a base plan or compatible add-ons (the catalog checks run alone), one whose
//! draft is no longer a draft, a missing or already planned one. So a refusal or a failure of
//! one task never fails the others, each task's outcome is decided by the one code path that
//! decides it for a task alone, and a set whose statements
//! fail (or whose commit does) leaves every task to that path — redelivery stays harmless,
//! since a task planned by a set is planned, and `claim` answers `Nothing` for it.

use super::{planned_batches, publish, JobError};
use crate::Context;
use domain::{MigrationType, TaskId, TaskSpec, TaskType};
use std::collections::HashSet;
use store::tasks::{self, Task};
use store::{plans, subscriptions};

/// Plans those of `ids` that a set takes, in one transaction, and answers the tasks it planned
/// (and ended); the caller plans the others alone. An error leaves every task to the caller.
#[tracing::instrument(skip_all, fields(tasks = ids.len(), task_ids = ?ids), err)]
pub async fn plan_set(ctx: &Context, ids: &[TaskId]) -> Result<Vec<TaskId>, JobError> {
    // its statements address rows by key and run plans cached once (see `begin_set_planning`)
    let mut tx = store::Work::begin_set_planning(&ctx.pool, ctx.settings.lock_timeout).await?;
    // a set ends its tasks in their planning: no job follows, and its commit need not wake the
    // relay (which would find nothing, once per set)
    tx.writes_no_outbox_rows();
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

    // a draft with a base plan or compatible add-ons stays a draft here, for its task to be
    // planned alone, where the catalog checks run: the set runs none (planning them was most
    // of what the set's statements cost, for drafts that rarely need them)
    let to_publish: Vec<_> = taken.iter().map(|t| (t.version, Some(t.task.id()))).collect();
    let published: HashSet<uuid::Uuid> =
        plans::publish_unchecked_versions(&mut tx, &to_publish).await?.into_iter().collect();

    let planned: Vec<&Taken<'_>> = taken.iter().filter(|t| published.contains(&t.version)).collect();
    let ids: Vec<TaskId> = planned.iter().map(|t| t.task.id()).collect();
    // the set's timeline goes with the statement that ends its tasks: `published` (and
    // `planned`, when there is nobody to move) for each, then the `finished` lines it adds
    let mut timeline = Vec::with_capacity(planned.len() * 2);
    for t in &planned {
        timeline.push(publish::published(t.task, t.number));
        if t.moves_all {
            // what planning its batches records when there is nobody to move
            timeline.push(planned_batches(t.task, 0, 0, &mut serde_json::json!({})));
        }
    }
    tasks::complete_planned_set(&mut tx, &ids, &timeline).await?;
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
