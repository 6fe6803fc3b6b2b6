//! The task state machine: statuses are Stigg's TaskStatus names; a task ends in exactly one
//! terminal state, decided from its counts.

use crate::wire_enum;

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
            | TaskType::RollbackMigration => true,
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
