//! A staged rollout's row (`task_rollouts`) as it is read: where the rollout stands and how
//! the tasks API shows it. Planning cohorts, pausing and resuming are `rollouts`; this module
//! only reads, so that whatever shows a task (its view, its webhook event) can show its
//! rollout without depending on the code that runs it.

use crate::Result;
use chrono::{DateTime, Utc};
use domain::rollout::threshold_percentage;
use domain::TaskId;
use serde_json::json;
use sqlx::PgConnection;
use uuid::Uuid;

/// A percentage as JSON: a whole number when it is one (`1`, not `1.0`); `null` for the named
/// customers' cohort.
pub fn percentage_json(threshold: i32) -> serde_json::Value {
    match threshold_percentage(threshold) {
        None => serde_json::Value::Null,
        Some(_) if threshold % 100 == 0 => json!(threshold / 100),
        Some(p) => json!(p),
    }
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Rollout {
    pub task_id: Uuid,
    pub environment_id: Uuid,
    pub thresholds: Vec<i32>,
    pub customer_ids: Vec<String>,
    pub interval_text: Option<String>,
    pub interval_ms: i64,
    pub current_cohort: i32,
    pub cohort_started_at: Option<DateTime<Utc>>,
    pub next_cohort_at: Option<DateTime<Utc>>,
    pub paused_at: Option<DateTime<Utc>>,
    pub paused_by: Option<String>,
}

impl Rollout {
    /// The salt of this rollout's buckets.
    pub(crate) fn salt(&self) -> String {
        self.task_id.to_string()
    }

    pub fn threshold(&self, cohort: i32) -> Option<i32> {
        usize::try_from(cohort).ok().and_then(|k| self.thresholds.get(k)).copied()
    }

    pub(crate) fn is_last(&self, cohort: i32) -> bool {
        cohort + 1 >= self.thresholds.len() as i32
    }
}

pub async fn get(conn: &mut PgConnection, task: TaskId) -> Result<Option<Rollout>> {
    Ok(sqlx::query_as::<_, Rollout>("SELECT * FROM task_rollouts WHERE task_id = $1")
        .bind(task.0)
        .fetch_optional(conn)
        .await?)
}
