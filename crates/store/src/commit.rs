//! Committing a unit of work (`Work::commit`): its timeline events and outbox jobs are written
//! in one statement each, its announcements are rendered by the process's `Announcer` (the
//! views the API answers with, outside this crate) and written as webhook events with their
//! deliveries, then the transaction commits and the outbox relay is woken. All of it happens in
//! the unit's transaction, so an effect exists exactly when its change committed.

use crate::cohorts::{self, Rollout};
use crate::plans::{self, PlanVersion};
use crate::task_row::Task;
use crate::work::{Announcement, Conn, Work};
use crate::{events, outbox, webhooks, Result, StoreError};
use domain::{EnvironmentId, PlanVersionStatus, TaskType, WebhookEventType};
use serde_json::Value;
use sqlx::PgConnection;
use std::sync::Arc;
use tokio::sync::Notify;

/// What wakes a relay: a process hands its relay's to every unit of work it commits.
pub type RelayWaker = Arc<Notify>;

/// Renders the data of webhook events. Implemented outside `store` (`views::Webhooks`) with the
/// views the API answers with.
pub trait Announcer: Send + Sync {
    /// A task as `GET /api/v1/tasks/{id}` shows it — one that reached a terminal status, or
    /// one whose approval changed — with its rollout's row if it is a staged rollout.
    fn task_ended(&self, task: &Task, rollout: Option<&Rollout>) -> serde_json::Result<Value>;
    /// A plan version that became PUBLISHED.
    fn version_published(&self, version: &PlanVersion) -> serde_json::Result<Value>;
}

/// What a process hands every unit of work it commits: its relay's waker, and how its webhook
/// events are rendered.
#[derive(Clone)]
pub struct Hooks {
    pub relay: Option<RelayWaker>,
    pub announcer: Arc<dyn Announcer>,
}

impl Hooks {
    pub fn new(announcer: Arc<dyn Announcer>) -> Hooks {
        Hooks { relay: None, announcer }
    }

    pub fn with_relay(mut self, relay: RelayWaker) -> Hooks {
        self.relay = Some(relay);
        self
    }
}

impl Work {
    /// Writes the unit's effects, commits it, and wakes the relay — unless the unit declared
    /// that it writes no outbox rows (`writes_no_outbox_rows`) and enqueued no job. A wake with
    /// nothing new to send costs the relay a transaction; a missed one would cost a poll
    /// interval.
    pub async fn commit(mut self, hooks: &Hooks) -> Result<()> {
        let has_effects = !(self.events.is_empty() && self.jobs.is_empty() && self.announcements.is_empty());
        if has_effects && matches!(self.conn, Conn::Single(_)) {
            // its statement has committed already: effects written now could be lost apart from it
            return Err(StoreError::Invariant("a one-statement unit of work writes its effects in its statement"));
        }
        let events = std::mem::take(&mut self.events);
        if !events.is_empty() {
            events::record_all(&mut self, &events).await?;
        }
        let jobs = std::mem::take(&mut self.jobs);
        if !jobs.is_empty() {
            outbox::enqueue_all(&mut self, &jobs).await?;
        }
        let announcements = std::mem::take(&mut self.announcements);
        if !announcements.is_empty() {
            // most environments have no endpoint: one look for the whole unit saves a statement
            // per announcement, and reading what the unheard ones would carry
            let envs: Vec<EnvironmentId> = announcements.iter().map(|a| a.environment()).collect();
            let heard = webhooks::subscriptions(&mut self, &envs).await?;
            for announcement in &announcements {
                let Some(event_type) = announcement.event_type() else { continue };
                if heard.hears(announcement.environment(), event_type) {
                    announce(&mut self, hooks.announcer.as_ref(), announcement, event_type).await?;
                }
            }
        }
        if let Conn::Tx(tx) = self.conn {
            tx.commit().await?;
        }
        for announcement in &announcements {
            if let Announcement::TaskEnded(task) = announcement {
                log_end(task);
            }
        }
        let woken = self.may_write_outbox || !jobs.is_empty();
        if let Some(relay) = hooks.relay.as_ref().filter(|_| woken) {
            relay.notify_one();
        }
        Ok(())
    }
}

/// Writes one announcement's webhook event of `event_type` and its deliveries (none when no
/// endpoint of the environment subscribes to it).
async fn announce(
    conn: &mut PgConnection,
    announcer: &dyn Announcer,
    announcement: &Announcement,
    event_type: WebhookEventType,
) -> Result<()> {
    match announcement {
        Announcement::TaskEnded(task) => {
            let rollout =
                if task.task_type() == TaskType::StagedRollout { cohorts::get(conn, task.id()).await? } else { None };
            let data = announcer.task_ended(task, rollout.as_ref()).map_err(unrenderable)?;
            webhooks::emit(conn, task.environment(), event_type, data).await
        }
        Announcement::Approval(_, task) => {
            let data = announcer.task_ended(task, None).map_err(unrenderable)?;
            webhooks::emit(conn, task.environment(), event_type, data).await
        }
        &Announcement::VersionPublished { environment, version } => {
            let version = plans::get_version(conn, environment, version).await?;
            if version.status() != PlanVersionStatus::Published {
                return Ok(());
            }
            let data = announcer.version_published(&version).map_err(unrenderable)?;
            webhooks::emit(conn, environment, event_type, data).await
        }
    }
}

impl Announcement {
    fn environment(&self) -> EnvironmentId {
        match self {
            Announcement::TaskEnded(task) | Announcement::Approval(_, task) => task.environment(),
            Announcement::VersionPublished { environment, .. } => *environment,
        }
    }

    /// The webhook event it is heard as; `None` for a task end no event names.
    fn event_type(&self) -> Option<WebhookEventType> {
        match self {
            Announcement::TaskEnded(task) => WebhookEventType::for_task_status(task.status()),
            Announcement::Approval(event_type, _) => Some(*event_type),
            Announcement::VersionPublished { .. } => Some(WebhookEventType::PlanVersionPublished),
        }
    }
}

/// The one line that says a task ended, once its end committed: what it was, how it ended,
/// its counts and how long it took from acceptance.
fn log_end(task: &Task) {
    // the ending statement sets finished_at and updated_at together
    let duration_ms = (task.finished_at.unwrap_or(task.updated_at) - task.created_at).num_milliseconds();
    let (id, kind, status) = (task.id, task.task_type.as_str(), task.status.as_str());
    let (total, processed, failed) = (task.total, task.processed, task.failed);
    match task.error_code.as_deref() {
        Some(code) => tracing::info!(
            task_id = %id, task_type = kind, status, total, processed, failed, duration_ms, error_code = code,
            "task ended"
        ),
        None => tracing::info!(
            task_id = %id, task_type = kind, status, total, processed, failed, duration_ms,
            "task ended"
        ),
    }
}

fn unrenderable(error: serde_json::Error) -> StoreError {
    StoreError::Database(sqlx::Error::Encode(Box::new(error)))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use domain::{Job, TaskId};
    use sqlx::PgPool;

    struct Silent;

    impl Announcer for Silent {
        fn task_ended(&self, _: &Task, _: Option<&Rollout>) -> serde_json::Result<Value> {
            Ok(Value::Null)
        }

        fn version_published(&self, _: &PlanVersion) -> serde_json::Result<Value> {
            Ok(Value::Null)
        }
    }

    async fn outbox_rows(pool: &PgPool) -> i64 {
        sqlx::query_scalar("SELECT count(*) FROM outbox").fetch_one(pool).await.unwrap()
    }

    #[sqlx::test(migrator = "crate::MIGRATOR")]
    async fn a_unit_writes_its_jobs_when_it_commits_and_wakes_the_relay(pool: PgPool) {
        let relay = Arc::new(Notify::new());
        let hooks = Hooks::new(Arc::new(Silent)).with_relay(relay.clone());
        let job = Job::Task { task_id: TaskId::new() };

        let mut dropped = Work::begin(&pool).await.unwrap();
        dropped.enqueue(job);
        drop(dropped);
        assert_eq!(outbox_rows(&pool).await, 0, "a unit that does not commit writes nothing");

        let mut work = Work::begin(&pool).await.unwrap();
        work.enqueue(job);
        work.enqueue(Job::Batch { task_id: job.task_id(), seq: 0 });
        work.commit(&hooks).await.unwrap();
        let rows: Vec<(String, Value)> =
            sqlx::query_as("SELECT routing_key, payload FROM outbox ORDER BY id").fetch_all(&pool).await.unwrap();
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].0, "task");
        assert_eq!(rows[1].1["seq"], 0);
        // the wake is stored as a permit: the relay sees it even if it was not waiting yet
        tokio::time::timeout(std::time::Duration::from_secs(1), relay.notified()).await.unwrap();
    }

    #[sqlx::test(migrator = "crate::MIGRATOR")]
    async fn a_unit_that_writes_no_outbox_rows_wakes_the_relay_only_for_jobs_it_enqueued(pool: PgPool) {
        let relay = Arc::new(Notify::new());
        let hooks = Hooks::new(Arc::new(Silent)).with_relay(relay.clone());
        let woken = || futures::FutureExt::now_or_never(relay.notified()).is_some();

        let mut quiet = Work::begin(&pool).await.unwrap();
        quiet.writes_no_outbox_rows();
        quiet.commit(&hooks).await.unwrap();
        assert!(!woken(), "nothing to send: the relay is left alone");

        // the declaration covers its statements, never its jobs: one enqueued still goes at once
        let mut mistaken = Work::begin(&pool).await.unwrap();
        mistaken.writes_no_outbox_rows();
        mistaken.enqueue(Job::Task { task_id: TaskId::new() });
        mistaken.commit(&hooks).await.unwrap();
        assert!(woken());
        assert_eq!(outbox_rows(&pool).await, 1);

        Work::begin(&pool).await.unwrap().commit(&hooks).await.unwrap();
        assert!(woken(), "a unit that declared nothing may have written rows in SQL: it wakes the relay");
    }

    #[sqlx::test(migrator = "crate::MIGRATOR")]
    async fn a_one_statement_unit_refuses_effects_it_could_not_commit_with_its_statement(pool: PgPool) {
        let hooks = Hooks::new(Arc::new(Silent));
        let mut work = Work::single(&pool).await.unwrap();
        work.enqueue(Job::Task { task_id: TaskId::new() });
        let refused = work.commit(&hooks).await.unwrap_err();
        assert!(matches!(refused, StoreError::Invariant(_)), "{refused}");
        assert_eq!(outbox_rows(&pool).await, 0);
    }
}
