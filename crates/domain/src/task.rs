//! The task state machine: statuses are Stigg's TaskStatus names; a task ends in exactly one
//! terminal state, decided from its counts.

use crate::{wire_enum, ErrorCode};
use chrono::{DateTime, Utc};
use serde::Serialize;

wire_enum!(
    TaskStatus, "task status" {
        Pending => "PENDING",
        InProgress => "IN_PROGRESS",
        Completed => "COMPLETED",
        PartiallyFailed => "PARTIALLY_FAILED",
        Failed => "FAILED",
        Canceled => "CANCELED",
    }
);

impl TaskStatus {
    pub fn is_terminal(self) -> bool {
        !matches!(self, TaskStatus::Pending | TaskStatus::InProgress)
    }

    /// The terminal status of a task whose items all ran: `failed` of `processed` could not
    /// be done.
    pub fn from_counts(processed: i64, failed: i64) -> TaskStatus {
        if failed == 0 {
            TaskStatus::Completed
        } else if failed >= processed {
            TaskStatus::Failed
        } else {
            TaskStatus::PartiallyFailed
        }
    }
}

wire_enum!(
    TaskType, "taskType" {
        PublishPlan => "PUBLISH_PLAN",
        SubscriptionMigration => "SUBSCRIPTION_MIGRATION",
        ImportSubscriptions => "IMPORT_SUBSCRIPTIONS",
        StagedRollout => "STAGED_ROLLOUT",
        RollbackMigration => "ROLLBACK_MIGRATION",
        PublishAddon => "PUBLISH_ADDON",
    }
);

impl TaskType {
    /// Whether tasks of this type move subscriptions between versions (and so can be rolled
    /// back: their history rows say who moved where).
    pub fn moves_subscriptions(self) -> bool {
        match self {
            TaskType::PublishPlan
            | TaskType::SubscriptionMigration
            | TaskType::StagedRollout
            | TaskType::RollbackMigration
            | TaskType::PublishAddon => true,
            TaskType::ImportSubscriptions => false,
        }
    }
}

/// Progress in whole percent, 0 to 100. A task with nothing to do is 100 % once done.
pub fn progress_percent(total: i64, processed: i64, status: TaskStatus) -> i64 {
    if total <= 0 {
        return if status.is_terminal() { 100 } else { 0 };
    }
    (processed.clamp(0, total) * 100) / total
}

// Field names are those of Stigg's SubscriptionMigrationTask, plus Cutover's `rollbackOf`,
// `rolledBackBy` and `skippedCount`; built from the task row by `store::tasks::Task::view`,
// the one rendering the tasks API and webhook events share.
/// A task as callers poll it.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TaskView {
    pub id: uuid::Uuid,
    #[schema(value_type = TaskType)]
    pub task_type: String,
    #[schema(value_type = TaskStatus)]
    pub status: String,
    /// Whole percent, 0 to 100.
    pub progress: i64,
    pub affected_customers_count: i64,
    pub counts: Counts,
    /// The plan the task is about, if any.
    pub initiated_package_id: Option<String>,
    pub target_version: Option<i32>,
    /// Why it failed (or last failed), once it has.
    pub error: Option<TaskError>,
    pub attempts: i32,
    pub created_at: DateTime<Utc>,
    pub start_date: Option<DateTime<Utc>>,
    pub end_date: Option<DateTime<Utc>>,
    /// The task this one rolls back, if it is a ROLLBACK_MIGRATION.
    pub rollback_of: Option<uuid::Uuid>,
    /// The ROLLBACK_MIGRATION that rolled this task back, if any.
    pub rolled_back_by: Option<uuid::Uuid>,
    /// Subscriptions the task passed over (moved by something else meanwhile).
    pub skipped_count: i64,
    /// A STAGED_ROLLOUT's cohorts: the percentages, the current cohort, the next cohort's
    /// time, paused or not. Absent on other tasks.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub rollout: Option<serde_json::Value>,
    /// Subscriptions the task's migration policy left alone, by reason (`status`, `customer`,
    /// `metadata`, `renewingWithin`); absent on a task without a policy.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub excluded_by_reason: Option<serde_json::Value>,
    /// The migration policy the task pinned when it was accepted; absent without one.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub policy: Option<serde_json::Value>,
    /// Maker-checker: `{"state": PENDING | APPROVED | REJECTED, "requestedBy", "decidedBy",
    /// "decidedAt"}`; absent when the task needed no approval.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub approval: Option<serde_json::Value>,
}

/// How far a task got.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Counts {
    pub total: i64,
    pub processed: i64,
    pub failed: i64,
    /// Subscriptions the task's migration policy left where they are (not in `total`);
    /// present when the task pinned a policy.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub excluded: Option<i64>,
}

/// A task's failure, in the error shape.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct TaskError {
    #[schema(value_type = ErrorCode)]
    pub code: String,
    pub message: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn terminal_status_follows_counts() {
        assert_eq!(TaskStatus::from_counts(10, 0), TaskStatus::Completed);
        assert_eq!(TaskStatus::from_counts(10, 3), TaskStatus::PartiallyFailed);
        assert_eq!(TaskStatus::from_counts(10, 10), TaskStatus::Failed);
        assert_eq!(TaskStatus::from_counts(0, 0), TaskStatus::Completed);
    }

    #[test]
    fn progress_is_bounded() {
        assert_eq!(progress_percent(2000, 1000, TaskStatus::InProgress), 50);
        assert_eq!(progress_percent(0, 0, TaskStatus::Completed), 100);
        assert_eq!(progress_percent(0, 0, TaskStatus::Pending), 0);
        assert_eq!(progress_percent(10, 20, TaskStatus::InProgress), 100);
    }
}
