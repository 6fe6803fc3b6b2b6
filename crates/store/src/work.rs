//! The unit of work: one transaction (or one connection, for a unit that is a single
//! statement) and the side effects that must commit with it, pushed into it as typed values —
//! jobs for the outbox (`enqueue`), timeline events (`record`), and the changes webhook
//! endpoints hear of (`announce`: a task that ended, a plan version published). `commit`
//! (in `commit.rs`) writes them in the unit's transaction, commits, and wakes the outbox relay.
//! Nothing else wakes the relay, so no caller can forget to (a forgotten wake costs a relay
//! poll interval, silently), and no effect exists for a unit that rolled back.
//!
//! The rule for store functions: a function that changes state other processes must hear of —
//! ends a task, publishes a version, announces work — takes `&mut Work`; one that only reads or
//! writes rows takes `&mut PgConnection` (a `Work` derefs to one) when it is part of a unit,
//! and `&PgPool` only when it is a whole unit of its own.
//!
//! This module names only the task row: what commits the effects is `commit.rs`, so that every
//! module may push into a unit without depending on what renders and writes its effects.

use crate::task_row::Task;
use crate::Result;
use domain::{EnvironmentId, Job, TaskId};
use serde_json::Value;
use sqlx::pool::PoolConnection;
use sqlx::{PgConnection, PgPool, Postgres};
use std::ops::{Deref, DerefMut};
use std::time::Duration;
use uuid::Uuid;

pub(crate) enum Conn {
    Tx(crate::Tx<'static>),
    Single(PoolConnection<Postgres>),
}

/// A line of a task's timeline, written when its unit commits.
#[derive(Debug, Clone)]
pub struct TimelineEvent {
    pub environment: EnvironmentId,
    pub task: TaskId,
    pub kind: String,
    pub message: String,
    pub actor: Option<String>,
    pub data: Value,
}

/// A change webhook endpoints hear of, announced by the unit that makes it.
#[derive(Debug, Clone)]
pub enum Announcement {
    /// A task reached a terminal status: its row as the ending statement left it.
    TaskEnded(Box<Task>),
    /// A plan version became PUBLISHED.
    VersionPublished { environment: EnvironmentId, version: Uuid },
    /// A step of a task's approval (awaiting, approved, rejected): its row after the step.
    Approval(domain::WebhookEventType, Box<Task>),
}

/// One unit of work. Dropping it without `commit` rolls it back and writes none of its effects.
pub struct Work {
    pub(crate) conn: Conn,
    pub(crate) jobs: Vec<Job>,
    pub(crate) events: Vec<TimelineEvent>,
    pub(crate) announcements: Vec<Announcement>,
    /// Whether its statements may have written outbox rows of their own (some write their job
    /// in SQL), so that its commit wakes the relay; see `writes_no_outbox_rows`.
    pub(crate) may_write_outbox: bool,
}

impl Work {
    fn new(conn: Conn) -> Work {
        Work { conn, jobs: Vec::new(), events: Vec::new(), announcements: Vec::new(), may_write_outbox: true }
    }

    /// Begins a transaction.
    pub async fn begin(pool: &PgPool) -> Result<Work> {
        Ok(Work::new(Conn::Tx(pool.begin().await?)))
    }

    /// Begins a transaction whose row locks wait at most `lock_timeout` (`SET LOCAL`, sent with
    /// the `BEGIN` in one round trip).
    pub async fn begin_with_lock_timeout(pool: &PgPool, lock_timeout: Duration) -> Result<Work> {
        Ok(Work::new(Conn::Tx(crate::begin_with_lock_timeout(pool, lock_timeout).await?)))
    }

    /// Begins a task's planning transaction: `begin_with_lock_timeout`, its statements planned
    /// for their values (`crate::begin_planning`).
    pub async fn begin_planning(pool: &PgPool, lock_timeout: Duration) -> Result<Work> {
        Ok(Work::new(Conn::Tx(crate::begin_planning(pool, lock_timeout).await?)))
    }

    /// Begins the planning transaction of a set of tasks: `begin_with_lock_timeout`, its
    /// statements run on plans cached by key (`crate::begin_set_planning`).
    pub async fn begin_set_planning(pool: &PgPool, lock_timeout: Duration) -> Result<Work> {
        Ok(Work::new(Conn::Tx(crate::begin_set_planning(pool, lock_timeout).await?)))
    }

    /// Begins a transaction whose statements run on plans cached by key (`crate::begin_by_key`).
    pub async fn begin_by_key(pool: &PgPool) -> Result<Work> {
        Ok(Work::new(Conn::Tx(crate::begin_by_key(pool).await?)))
    }

    /// A unit that is one statement, atomic on its own: no transaction around it (it saves the
    /// `BEGIN` and `COMMIT` round trips). Effects pushed into it are written by `commit` in
    /// statements of their own, so a single unit writes its effects in its statement.
    pub async fn single(pool: &PgPool) -> Result<Work> {
        Ok(Work::new(Conn::Single(pool.acquire().await?)))
    }

    /// Announces a job: written to the outbox when the unit commits, never if it does not.
    pub fn enqueue(&mut self, job: Job) {
        self.jobs.push(job);
    }

    /// Declares that no statement of this unit writes outbox rows, so that its commit does not
    /// wake the relay unless jobs were pushed with `enqueue`. For units whose statements are
    /// known — a set of publishes ending in their planning — and commit often: every wake
    /// costs the relay a transaction that finds nothing. A wrong declaration delays a job by
    /// the relay's poll interval, never loses it.
    pub fn writes_no_outbox_rows(&mut self) {
        self.may_write_outbox = false;
    }

    /// Adds a line to a task's timeline, written when the unit commits.
    pub fn record(&mut self, event: TimelineEvent) {
        self.events.push(event);
    }

    /// Announces a change to webhook endpoints, rendered and written when the unit commits.
    pub fn announce(&mut self, announcement: Announcement) {
        self.announcements.push(announcement);
    }

    /// Abandons the unit: nothing of it is written (as when it is dropped).
    pub fn rollback(self) {}
}

impl Deref for Work {
    type Target = PgConnection;

    fn deref(&self) -> &PgConnection {
        match &self.conn {
            Conn::Tx(tx) => tx,
            Conn::Single(conn) => conn,
        }
    }
}

impl DerefMut for Work {
    fn deref_mut(&mut self) -> &mut PgConnection {
        match &mut self.conn {
            Conn::Tx(tx) => tx,
            Conn::Single(conn) => conn,
        }
    }
}
