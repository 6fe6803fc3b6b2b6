//! The scheduler: every tick, applies the scheduled version changes that are due, in batches,
//! one transaction each (move, history row, change DONE, task progress, task end), cancels the
//! subscriptions whose scheduled cancellation is due (their scheduled moves CANCELED), and starts
//! the next cohort of every staged rollout whose `next_cohort_at` has come (its batches and
//! their outbox rows, one transaction). Runs in every worker; `FOR UPDATE SKIP LOCKED` gives
//! each scheduler its own rows, so any number run at once and none applies a change or starts
//! a cohort twice. The wait between cohorts lives in Postgres, so a killed worker loses none
//! of it. It plans no task's first step; the handlers do.

use crate::Context;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Changes applied per transaction.
pub const BATCH: i64 = 1000;

pub async fn run_scheduler(ctx: Context, tick: Duration, cancel: CancellationToken) {
    let mut interval = tokio::time::interval(tick.max(Duration::from_millis(10)));
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = interval.tick() => {}
            () = cancel.cancelled() => return,
        }
        // drain what is due, a batch at a time, unless asked to stop
        loop {
            if cancel.is_cancelled() {
                return;
            }
            match apply_once(&ctx).await {
                Ok(taken) if taken as i64 >= BATCH => continue,
                Ok(_) => break,
                Err(e) => {
                    tracing::warn!(error = %e, "scheduler pass failed; trying again next tick");
                    break;
                }
            }
        }
        loop {
            if cancel.is_cancelled() {
                return;
            }
            match cancel_due_subscriptions(&ctx).await {
                Ok(canceled) if canceled as i64 >= BATCH => continue,
                Ok(_) => break,
                Err(e) => {
                    tracing::warn!(error = %e, "cancellation pass failed; trying again next tick");
                    break;
                }
            }
        }
        if let Err(e) = start_due_cohorts(&ctx).await {
            tracing::warn!(error = %e, "rollout pass failed; trying again next tick");
        }
    }
}

/// Rollouts whose next cohort one pass starts at most.
pub const COHORTS_PER_PASS: i64 = 20;

/// Starts the cohorts that are due, in one transaction; answers how many it started.
pub async fn start_due_cohorts(ctx: &Context) -> Result<usize, store::StoreError> {
    let mut tx = store::Work::begin_with_lock_timeout(&ctx.pool, ctx.settings.lock_timeout).await?;
    let started = store::rollouts::start_due(&mut tx, ctx.settings.batch_size, COHORTS_PER_PASS).await?;
    tx.commit(&ctx.hooks).await?;
    for s in &started {
        tracing::info!(
            worker = %ctx.settings.worker_id,
            task_id = %s.task_id,
            cohort = s.cohort,
            batches = s.batches,
            subscriptions = s.subscriptions,
            "started a rollout cohort"
        );
    }
    Ok(started.len())
}

/// Cancels, in one transaction, up to `BATCH` subscriptions whose scheduled cancellation has
/// come (by the database's clock), withdrawing their scheduled moves; answers how many.
pub async fn cancel_due_subscriptions(ctx: &Context) -> Result<usize, store::StoreError> {
    let mut tx = store::Work::begin_with_lock_timeout(&ctx.pool, ctx.settings.lock_timeout).await?;
    let canceled = store::cancellations::apply_due(&mut tx, BATCH).await?;
    tx.commit(&ctx.hooks).await?;
    if canceled > 0 {
        tracing::info!(worker = %ctx.settings.worker_id, canceled, "canceled subscriptions whose cancellation was due");
    }
    Ok(canceled)
}

/// One batch of due changes in one transaction; answers how many it took.
pub async fn apply_once(ctx: &Context) -> Result<usize, store::StoreError> {
    let mut tx = store::Work::begin_with_lock_timeout(&ctx.pool, ctx.settings.lock_timeout).await?;
    let applied = store::version_changes::apply_due(&mut tx, BATCH).await?;
    tx.commit(&ctx.hooks).await?;
    if applied.taken > 0 {
        tracing::info!(
            worker = %ctx.settings.worker_id,
            taken = applied.taken,
            moved = applied.moved,
            failed = applied.failed,
            finished = applied.finished.len(),
            "applied due version changes"
        );
    }
    Ok(applied.taken)
}
