//! What travels over RabbitMQ. A message names work by id and never carries state, so a
//! duplicate, late or replayed message is harmless: the worker re-reads the rows and does only
//! what is still undone.

use crate::TaskId;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Job {
    /// Run (or resume) a task: plan it, or do it whole if it is small.
    Task {
        #[serde(rename = "taskId")]
        task_id: TaskId,
    },
    /// Run one batch of a task.
    Batch {
        #[serde(rename = "taskId")]
        task_id: TaskId,
        seq: i32,
    },
}

impl Job {
    pub fn task_id(&self) -> TaskId {
        match self {
            Job::Task { task_id } | Job::Batch { task_id, .. } => *task_id,
        }
    }

    /// The routing key: tasks and batches go to separate queues so that planning a new task
    /// never waits behind the batches of a large migration.
    pub fn routing_key(&self) -> &'static str {
        match self {
            Job::Task { .. } => "task",
            Job::Batch { .. } => "batch",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jobs_have_a_stable_wire_form() {
        let id = TaskId::new();
        let job = Job::Batch { task_id: id, seq: 3 };
        let json = serde_json::to_value(job).unwrap();
        assert_eq!(json["kind"], "batch");
        assert_eq!(json["seq"], 3);
        assert_eq!(serde_json::from_value::<Job>(json).unwrap(), job);
        assert!(serde_json::from_str::<Job>(r#"{"kind":"nope"}"#).is_err());
    }
}
