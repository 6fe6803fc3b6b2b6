//! What webhooks announce: the fixed set of event types an endpoint may subscribe to, and which
//! terminal task status each task event stands for.

use crate::task::TaskStatus;
use crate::wire_enum;

wire_enum!(
    WebhookEventType, "webhook event type" {
        TaskCompleted => "task.completed",
        TaskFailed => "task.failed",
        TaskPartiallyFailed => "task.partially_failed",
        TaskCanceled => "task.canceled",
        PlanVersionPublished => "plan.version_published",
    }
);

impl WebhookEventType {
    /// The event a task reaching `status` announces; none for a status that is not terminal.
    pub fn for_task_status(status: TaskStatus) -> Option<Self> {
        match status {
            TaskStatus::Completed => Some(WebhookEventType::TaskCompleted),
            TaskStatus::Failed => Some(WebhookEventType::TaskFailed),
            TaskStatus::PartiallyFailed => Some(WebhookEventType::TaskPartiallyFailed),
            TaskStatus::Canceled => Some(WebhookEventType::TaskCanceled),
            TaskStatus::Pending | TaskStatus::InProgress => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_terminal_status_has_its_event_and_no_other_does() {
        for status in TaskStatus::ALL {
            assert_eq!(WebhookEventType::for_task_status(*status).is_some(), status.is_terminal(), "{status}");
        }
        assert_eq!(WebhookEventType::parse("task.partially_failed"), Ok(WebhookEventType::TaskPartiallyFailed));
        assert!(WebhookEventType::parse("task.started").is_err());
    }
}
