//! The data of webhook events, rendered with the views the API answers with: a finished task
//! is `GET /api/v1/tasks/{id}`'s answer, a published plan version is Stigg's plan. The unit of
//! work calls it while it commits, so the event is a snapshot of what committed.

use store::cohorts::Rollout;
use store::commit::Announcer;
use store::plans::PlanVersion;
use store::tasks::Task;

/// Renders webhook events with Cutover's views.
#[derive(Debug, Clone, Copy, Default)]
pub struct Webhooks;

impl Announcer for Webhooks {
    fn task_ended(&self, task: &Task, rollout: Option<&Rollout>) -> serde_json::Result<serde_json::Value> {
        serde_json::to_value(crate::task::task(task, rollout))
    }

    fn version_published(&self, version: &PlanVersion) -> serde_json::Result<serde_json::Value> {
        serde_json::to_value(crate::stigg::plan(version))
    }
}
