//! A task as `GET /api/v1/tasks/{id}` answers it (`domain::task::TaskView`, the field names of
//! Stigg's SubscriptionMigrationTask plus Cutover's own), with a staged rollout's cohorts.

use domain::task::{progress_percent, Counts, TaskError, TaskStatus, TaskView};
use serde_json::json;
use store::cohorts::{percentage_json, Rollout};
use store::tasks::Task;

/// The task, and its rollout when it is a STAGED_ROLLOUT (`rollout` is the row of
/// `task_rollouts`, if the caller read it).
pub fn task(t: &Task, rollout: Option<&Rollout>) -> TaskView {
    let status = t.status();
    // A finished task shows an error only when it ended FAILED or PARTIALLY_FAILED: an attempt's
    // error that a later attempt got past (it stays in the timeline) is no error of a COMPLETED
    // task, and a superseded task's reason is its timeline's `superseded` event. A running
    // task shows the error of its last failed attempt.
    let shows_error = match status {
        TaskStatus::Failed | TaskStatus::PartiallyFailed => true,
        TaskStatus::Pending | TaskStatus::InProgress => t.last_error.is_some(),
        _ => false,
    };
    let error = t
        .error_code
        .as_ref()
        .filter(|_| shows_error)
        .map(|code| TaskError { code: code.clone(), message: t.last_error.clone().unwrap_or_default() });
    TaskView {
        id: t.id,
        task_type: t.task_type.as_str().to_owned(),
        status: t.status.as_str().to_owned(),
        progress: progress_percent(t.total, t.processed, status),
        affected_customers_count: t.affected_customers,
        counts: Counts {
            total: t.total,
            processed: t.processed,
            failed: t.failed,
            excluded: t.policy.as_ref().map(|_| t.excluded),
        },
        // the package the task works on: its plan, or its add-on
        initiated_package_id: t.plan_id.clone().or_else(|| t.addon_id.clone()),
        target_version: t.target_version_number,
        error,
        attempts: t.attempts,
        created_at: t.created_at,
        start_date: t.started_at,
        end_date: t.finished_at,
        rollback_of: t.rollback_of,
        rolled_back_by: t.rolled_back_by,
        skipped_count: t.skipped,
        rollout: rollout.map(self::rollout),
        excluded_by_reason: t.policy.as_ref().map(|_| excluded_by_reason(t)),
        policy: t.policy.clone(),
        approval: t.approval_state.as_ref().map(|state| {
            json!({
                "state": state,
                "requestedBy": t.approval_requested_by,
                "decidedBy": t.approval_decided_by,
                "decidedAt": t.approval_decided_at,
            })
        }),
    }
}

/// Every reason with its count (0 when none), so a caller reads `excludedByReason.status`
/// without checking for it.
fn excluded_by_reason(t: &Task) -> serde_json::Value {
    let counted = t.excluded_by_reason.as_ref().and_then(|v| v.as_object());
    let reasons = domain::policy::by_reason(|reason| counted.and_then(|c| c.get(reason)).and_then(|v| v.as_i64()));
    json!(reasons)
}

/// How a rollout shows on its task: the cohorts asked for, the cohort now running or last run
/// (index, percentage — `null` for the named customers' cohort — and start), when the next one
/// starts, and whether it is paused.
pub fn rollout(r: &Rollout) -> serde_json::Value {
    let percentages: Vec<serde_json::Value> =
        r.thresholds.iter().filter(|t| **t > 0).map(|t| percentage_json(*t)).collect();
    let current = r.threshold(r.current_cohort).map(|t| {
        json!({
            "index": r.current_cohort,
            "percentage": percentage_json(t),
            "startedAt": r.cohort_started_at,
        })
    });
    json!({
        "cohorts": percentages,
        "customerIds": if r.customer_ids.is_empty() { None } else { Some(&r.customer_ids) },
        "cohortCount": r.thresholds.len(),
        "interval": r.interval_text,
        "currentCohort": current,
        "nextCohortAt": r.next_cohort_at,
        "paused": r.paused_at.is_some(),
        "pausedAt": r.paused_at,
        "pausedBy": r.paused_by,
    })
}

/// A task's batches by state.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct BatchCounts {
    /// Queued or being run.
    pub pending: i64,
    pub done: i64,
    pub failed: i64,
    pub canceled: i64,
}

/// How a running task is going, as its event stream's `task` event and the dashboard carry it
/// beside the task: the rate over a sliding window (so it falls to zero while nothing moves,
/// rather than decaying from an average over the whole run), the ETA at that rate, its batches
/// by state, and a throughput sparkline.
#[derive(Debug, Clone, PartialEq, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct LiveProgress {
    /// Items (moved or failed) a second over the last `rateWindowSecs` of the task's batches;
    /// `null` before the task started and once it ended.
    pub rate_per_sec: Option<f64>,
    pub rate_window_secs: i64,
    /// Seconds left at that rate; `null` while nothing moves or once the task ended.
    pub eta_secs: Option<f64>,
    pub batches: BatchCounts,
    /// Items finished in each of the last buckets of `throughputBucketSecs`, oldest first,
    /// ending now (or when the task ended).
    pub throughput: Vec<i64>,
    pub throughput_bucket_secs: i64,
}

/// The live view of task `t` from what `store::dashboard::live` read.
pub fn live(t: &Task, live: &store::dashboard::Live) -> LiveProgress {
    let running = !t.status().is_terminal();
    let rate = live.rate().filter(|_| running);
    let remaining = (t.total - t.processed).max(0) as f64;
    LiveProgress {
        // two decimals are all anyone reads, and a stream sends only what changed
        rate_per_sec: rate.map(|r| (r * 100.0).round() / 100.0),
        rate_window_secs: store::dashboard::RATE_WINDOW_SECS,
        eta_secs: rate.filter(|r| *r > 0.0).map(|r| (remaining / r).round()),
        batches: BatchCounts { pending: live.pending, done: live.done, failed: live.failed, canceled: live.canceled },
        throughput: live.spark.clone(),
        throughput_bucket_secs: store::dashboard::SPARK_BUCKET_SECS,
    }
}

#[cfg(test)]
mod tests {
    fn counts(window_items: i64, window_secs: f64) -> store::dashboard::Live {
        store::dashboard::Live {
            pending: 3,
            done: 7,
            failed: 1,
            canceled: 0,
            window_items,
            window_secs,
            spark: vec![0, 5],
        }
    }

    #[test]
    fn the_rate_is_the_window_s_and_vanishes_when_nothing_moves() {
        let live = counts(300, 30.0);
        assert_eq!(live.rate(), Some(10.0));
        assert_eq!(counts(0, 30.0).rate(), Some(0.0));
        // a task that has not started has no rate at all
        assert_eq!(counts(0, 0.0).rate(), None);
    }
}
