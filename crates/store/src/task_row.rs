//! A task's row as it is read: the one type every module that reads or ends tasks shares.
//! It decides nothing and names no other store module, so that the unit of work can carry
//! the rows of the tasks it ended without depending on the code that ends them.

use chrono::{DateTime, Utc};
use domain::{EnvironmentId, InvalidTaskSpec, MigrationPolicy, TaskId, TaskSpec, TaskStatus, TaskType};
use serde_json::Value;
use uuid::Uuid;

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Task {
    pub id: Uuid,
    pub environment_id: Uuid,
    pub seq: i64,
    #[sqlx(try_from = "String")]
    pub task_type: TaskType,
    #[sqlx(try_from = "String")]
    pub status: TaskStatus,
    pub plan_id: Option<String>,
    /// The add-on a task on an add-on works on (its `plan_id` is then NULL).
    pub addon_id: Option<String>,
    /// The task's spec as stored (`domain::TaskSpec`); read it with `spec()`.
    pub payload: Value,
    /// Whether the task holds its plan while it is not terminal (`TaskSpec::holds_plan`).
    pub holds_plan: bool,
    pub target_version_id: Option<Uuid>,
    pub target_version_number: Option<i32>,
    pub total: i64,
    pub processed: i64,
    pub failed: i64,
    pub affected_customers: i64,
    pub attempts: i32,
    pub max_attempts: i32,
    pub last_error: Option<String>,
    pub error_code: Option<String>,
    pub idempotency_key: Option<String>,
    pub lease_owner: Option<String>,
    pub lease_expires_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub started_at: Option<DateTime<Utc>>,
    pub planned_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
    pub updated_at: DateTime<Utc>,
    /// For a rollback: the task whose moves it undoes.
    pub rollback_of: Option<Uuid>,
    /// The rollback that undoes this task's moves, once one was accepted.
    pub rolled_back_by: Option<Uuid>,
    /// Subscriptions a rollback left alone: they were no longer where the task put them.
    pub skipped: i64,
    /// The migration policy pinned when the task was accepted (`domain::MigrationPolicy`);
    /// read it with `policy()`.
    pub policy: Option<Value>,
    /// Maker-checker state: PENDING, APPROVED or REJECTED; NULL when no approval was required.
    pub approval_state: Option<String>,
    pub approval_requested_by: Option<String>,
    pub approval_decided_by: Option<String>,
    pub approval_decided_at: Option<DateTime<Utc>>,
    pub approval_announced: bool,
    /// Subscriptions the policy left alone, and by reason (`{"status": n, ...}`).
    pub excluded: i64,
    pub excluded_by_reason: Option<Value>,
}

impl Task {
    pub fn id(&self) -> TaskId {
        TaskId(self.id)
    }

    pub fn environment(&self) -> EnvironmentId {
        EnvironmentId(self.environment_id)
    }

    pub fn status(&self) -> TaskStatus {
        self.status
    }

    pub fn task_type(&self) -> TaskType {
        self.task_type
    }

    /// What the task was asked to do. A payload that is not a spec of this task's type is an
    /// error naming what is wrong, never a default.
    pub fn spec(&self) -> std::result::Result<TaskSpec, InvalidTaskSpec> {
        TaskSpec::for_task(self.task_type, &self.payload)
    }

    /// The migration policy the task pinned, `None` when it has none. A stored policy that
    /// does not read is an error naming what is wrong, never "no policy".
    pub fn policy(&self) -> std::result::Result<Option<MigrationPolicy>, InvalidTaskSpec> {
        self.policy
            .as_ref()
            .filter(|p| !p.is_null())
            .map(|p| MigrationPolicy::from_json(p).map_err(|why| InvalidTaskSpec(format!("policy: {why}"))))
            .transpose()
    }

    /// Neither planned nor finished: what a claim takes.
    pub fn left_to_plan(&self) -> bool {
        self.planned_at.is_none() && !self.status().is_terminal()
    }

    /// Whether the task waits for an admin's approval before it starts.
    pub fn awaits_approval(&self) -> bool {
        self.approval_state.as_deref() == Some("PENDING")
    }
}
