//! The unit of work: one transaction (or one connection, for a unit that is a single
//! statement) and the side effects that must commit with it. Jobs for the outbox are pushed
//! into it as typed values and written by `commit`, in one statement before the transaction
//! commits; store functions whose statements write outbox rows themselves (set-based, e.g. one
//! row per planned batch) run on it as on any connection. After the commit, `commit` wakes the
//! outbox relay so that the jobs leave at once: nothing else wakes the relay, so no caller can
//! forget to (a forgotten wake costs a relay poll interval, silently).
//!
//! The rule for store functions: they take `&mut PgConnection` for work inside a unit (a
//! `Work` derefs to one) and `&PgPool` only when they are a whole unit of their own (a read,
//! or a write that needs nothing else in its transaction). A unit that writes outbox rows is a
//! `Work`.

use crate::Result;
use domain::Job;
use sqlx::pool::PoolConnection;
use sqlx::{PgConnection, PgPool, Postgres};
use std::ops::{Deref, DerefMut};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;

/// What wakes a relay: a process hands its relay's to every unit of work it begins.
pub type RelayWaker = Arc<Notify>;

enum Conn {
    Tx(crate::Tx<'static>),
    Single(PoolConnection<Postgres>),
}

/// One unit of work. Dropping it without `commit` rolls it back and writes none of its jobs.
pub struct Work {
    conn: Conn,
    jobs: Vec<Job>,
    relay: Option<RelayWaker>,
}

impl Work {
    /// Begins a transaction.
    pub async fn begin(pool: &PgPool, relay: Option<&RelayWaker>) -> Result<Work> {
        Ok(Work { conn: Conn::Tx(pool.begin().await?), jobs: Vec::new(), relay: relay.cloned() })
    }

    /// Begins a transaction whose row locks wait at most `lock_timeout` (`SET LOCAL`, sent with
    /// the `BEGIN` in one round trip).
    pub async fn begin_with_lock_timeout(
        pool: &PgPool,
        lock_timeout: Duration,
        relay: Option<&RelayWaker>,
    ) -> Result<Work> {
        let tx = crate::begin_with_lock_timeout(pool, lock_timeout).await?;
        Ok(Work { conn: Conn::Tx(tx), jobs: Vec::new(), relay: relay.cloned() })
    }

    /// A unit that is one statement, atomic on its own: no transaction around it (it saves the
    /// `BEGIN` and `COMMIT` round trips). Typed jobs pushed into it are written by `commit` in
    /// a statement of their own, so a single unit should write its jobs in its statement.
    pub async fn single(pool: &PgPool, relay: Option<&RelayWaker>) -> Result<Work> {
        Ok(Work { conn: Conn::Single(pool.acquire().await?), jobs: Vec::new(), relay: relay.cloned() })
    }

    /// Announces a job: written to the outbox when the unit commits, never if it does not.
    pub fn enqueue(&mut self, job: Job) {
        self.jobs.push(job);
    }

    /// Abandons the unit: nothing of it is written (as when it is dropped).
    pub fn rollback(self) {}

    /// Writes the jobs pushed into the unit, commits it, and wakes the relay.
    pub async fn commit(mut self) -> Result<()> {
        let jobs = std::mem::take(&mut self.jobs);
        if !jobs.is_empty() {
            crate::outbox::enqueue_all(&mut self, &jobs).await?;
        }
        if let Conn::Tx(tx) = self.conn {
            tx.commit().await?;
        }
        if let Some(relay) = &self.relay {
            relay.notify_one();
        }
        Ok(())
    }
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
