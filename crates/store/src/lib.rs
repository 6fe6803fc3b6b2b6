//! Postgres through sqlx: one module per aggregate. This crate is the only place that holds
//! SQL. Every query that touches tenant data filters by `environment_id`; callers pass the
//! environment they authenticated, never one they read from a request body.

pub mod actions;
pub mod addons;
pub mod api_keys;
pub mod approvals;
pub mod batches;
pub mod cancellations;
pub mod catalog;
pub mod cohorts;
pub mod commit;
pub mod customers;
pub mod dashboard;
pub mod dead_letters;
pub mod events;
pub mod idempotency;
pub mod movers;
pub mod outbox;
pub mod plans;
pub mod policies;
pub mod prices;
pub mod products;
pub mod queues;
pub mod revenue;
pub mod rollbacks;
pub mod rollouts;
pub mod sequence_plans;
pub mod subscriptions;
pub mod task_row;
pub mod tasks;
pub mod version_changes;
pub mod webhooks;
pub mod work;
pub mod workers;

use domain::ErrorCode;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{ConnectOptions, Connection, PgPool};
use std::str::FromStr;
use std::time::Duration;

pub use sqlx::PgPool as Pool;
pub type Tx<'a> = sqlx::Transaction<'a, sqlx::Postgres>;
pub use commit::{Announcer, Hooks, RelayWaker};
pub use work::{Announcement, TimelineEvent, Work};

/// The schema, from the top-level `migrations/` folder, embedded in the binary.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../../migrations");

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A business rule refused the change; the code is the contract's.
    #[error("{message}")]
    Rejected { code: ErrorCode, message: String },
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error("migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// Code asked for something the store's rules forbid (a bug, never bad input).
    #[error("store invariant broken: {0}")]
    Invariant(&'static str),
}

impl StoreError {
    pub fn rejected(code: ErrorCode, message: impl Into<String>) -> Self {
        StoreError::Rejected { code, message: message.into() }
    }

    /// Whether trying again later could succeed: connection trouble, lock timeouts,
    /// serialization failures and deadlocks are transient; a refused rule is not.
    pub fn is_transient(&self) -> bool {
        match self {
            StoreError::Rejected { .. } | StoreError::Migrate(_) | StoreError::Invariant(_) => false,
            StoreError::Database(e) => is_transient(e),
        }
    }
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

pub fn is_transient(error: &sqlx::Error) -> bool {
    match error {
        sqlx::Error::Io(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed
        | sqlx::Error::Protocol(_)
        | sqlx::Error::Tls(_) => true,
        sqlx::Error::Database(db) => matches!(
            db.code().as_deref(),
            // serialization_failure, deadlock_detected, lock_not_available, query_canceled,
            // admin_shutdown, crash_shutdown, cannot_connect_now, too_many_connections;
            // insufficient resources: disk_full, out_of_memory, configuration_limit_exceeded
            Some(
                "40001"
                    | "40P01"
                    | "55P03"
                    | "57014"
                    | "57P01"
                    | "57P02"
                    | "57P03"
                    | "53300"
                    | "53100"
                    | "53200"
                    | "53400"
            )
        ),
        _ => false,
    }
}

/// The database's clock, as the caller's transaction sees it (the transaction's start). It
/// decides what is due — effective dates, scheduled moves, cohorts — so that a process whose
/// own clock is off can never move anything early or late; process clocks only pace loops.
pub async fn db_now(conn: &mut sqlx::PgConnection) -> Result<chrono::DateTime<chrono::Utc>> {
    Ok(sqlx::query_scalar("SELECT now()").fetch_one(conn).await?)
}

/// A stored value this build does not know (an enum column's unknown name): an error, never a
/// fallback.
pub(crate) fn unreadable(error: domain::UnknownVariant) -> StoreError {
    StoreError::Database(sqlx::Error::Decode(Box::new(error)))
}

pub(crate) fn is_unique_violation(error: &sqlx::Error, constraint: &str) -> bool {
    match error {
        sqlx::Error::Database(db) => db.code().as_deref() == Some("23505") && db.constraint() == Some(constraint),
        _ => false,
    }
}

/// Pool settings that matter at scale.
#[derive(Debug, Clone)]
pub struct PoolSettings {
    pub max_connections: u32,
    pub acquire_timeout: Duration,
}

impl Default for PoolSettings {
    fn default() -> Self {
        Self { max_connections: 16, acquire_timeout: Duration::from_secs(10) }
    }
}

/// Connects to `url`, creating the database first if it does not exist, and applies the
/// migrations.
pub async fn connect_and_migrate(url: &str, settings: &PoolSettings) -> Result<PgPool> {
    let options = PgConnectOptions::from_str(url)?;
    ensure_database(&options).await?;
    let pool = connect(options, settings).await?;
    MIGRATOR.run(&pool).await?;
    Ok(pool)
}

/// A pooled connection idle for at least this long is pinged before it is handed out (see
/// `connect`).
const PING_AFTER_IDLE: Duration = Duration::from_secs(1);

/// Opens the pool. A connection is tested with a ping (a round trip) when it goes back to the
/// pool, and before it is handed out only if it sat idle for `PING_AFTER_IDLE` or more: a
/// connection back from work a moment ago was just found alive, and under load the ping before
/// every use was a round trip per statement for nothing (it cost a publish two round trips, a
/// tenth of Postgres' CPU per publish in `dispatch`). One idle long enough to have lost its
/// server (a restart, a failover) is still tested and replaced before any statement meets it.
pub async fn connect(options: PgConnectOptions, settings: &PoolSettings) -> Result<PgPool> {
    let pool = PgPoolOptions::new()
        .max_connections(settings.max_connections)
        .acquire_timeout(settings.acquire_timeout)
        .test_before_acquire(false)
        .before_acquire(|conn, meta| {
            Box::pin(async move {
                if meta.idle_for >= PING_AFTER_IDLE {
                    sqlx::Connection::ping(conn).await?;
                }
                Ok(true)
            })
        })
        .connect_with(options.log_statements(tracing::log::LevelFilter::Trace))
        .await?;
    Ok(pool)
}

/// Creates the database named in `options` when it is absent, through the server's
/// `postgres` maintenance database.
pub async fn ensure_database(options: &PgConnectOptions) -> Result<()> {
    let Some(name) = options.get_database().map(str::to_owned) else {
        return Ok(());
    };
    let admin = options.clone().database("postgres");
    let mut conn = sqlx::PgConnection::connect_with(&admin).await?;
    let exists: bool = sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)")
        .bind(&name)
        .fetch_one(&mut conn)
        .await?;
    if !exists {
        let quoted = format!("\"{}\"", name.replace('"', "\"\""));
        match sqlx::query(&format!("CREATE DATABASE {quoted}")).execute(&mut conn).await {
            Ok(_) => tracing::info!(database = %name, "created database"),
            // another process created it at the same moment
            Err(sqlx::Error::Database(db)) if matches!(db.code().as_deref(), Some("42P04" | "23505")) => {}
            Err(e) => return Err(e.into()),
        }
    }
    conn.close().await?;
    Ok(())
}

/// Begins a transaction that waits at most `timeout` for a row lock: a row locked elsewhere
/// for too long fails this try (a transient error, retried later) instead of stalling a
/// worker. The `BEGIN` and the `SET LOCAL` go as one query, one round trip.
pub async fn begin_with_lock_timeout(pool: &PgPool, timeout: Duration) -> Result<Tx<'static>> {
    begin_with_settings(pool, timeout, "").await
}

/// `begin_with_lock_timeout` for a task planned alone, whose statements are
/// planned for their values (`CUSTOM_PLANS`), in the same one round trip.
pub async fn begin_planning(pool: &PgPool, timeout: Duration) -> Result<Tx<'static>> {
    begin_with_settings(pool, timeout, CUSTOM_PLANS).await
}

/// `begin_with_lock_timeout` for a set of tasks planned together (`BY_KEY`), in the same one
/// round trip.
pub async fn begin_set_planning(pool: &PgPool, timeout: Duration) -> Result<Tx<'static>> {
    begin_with_settings(pool, timeout, BY_KEY).await
}

/// A transaction whose statements run on plans cached by key (`BY_KEY`), begun in one round
/// trip: a set of publishes accepted together (`tasks::accept_publishes`), whose one
/// statement would otherwise cost more to plan, each time, than to run.
pub async fn begin_by_key(pool: &PgPool) -> Result<Tx<'static>> {
    Ok(pool.begin_with(format!("BEGIN; {BY_KEY}")).await?)
}

/// Every statement runs the plan its connection cached for its text (`force_generic_plan`:
/// planned once, never again), and no plan made here reads a table from end to end
/// (`enable_seqscan = off`). For a set of tasks planned together, whose statements address
/// rows by primary key (`id = ANY($1)`, no predicate a partial index could serve), or probe an
/// index per given key in a subquery: with sequential scans ruled out that leaves the planner
/// one index to choose, whatever the table's size when the plan is made, so the cached plan
/// cannot turn into a scan as the tables grow (what `CUSTOM_PLANS` guards a task planned alone
/// against, at the price of a planning per statement). The foreign-key check of each timeline
/// row a set writes is by primary key too, and planned once per connection rather than once
/// per row. Those statements' texts are the set's own, so their cached plans are only ever
/// made under these settings.
const BY_KEY: &str = "SET LOCAL plan_cache_mode = force_generic_plan; SET LOCAL enable_seqscan = off";

/// `BEGIN`, the lock timeout and `also` (more `SET LOCAL`s, or nothing) as one query.
async fn begin_with_settings(pool: &PgPool, timeout: Duration, also: &str) -> Result<Tx<'static>> {
    let ms = timeout.as_millis().clamp(1, i32::MAX as u128);
    let begin = format!("BEGIN; SET LOCAL lock_timeout = {ms}");
    Ok(pool.begin_with(if also.is_empty() { begin } else { format!("{begin}; {also}") }).await?)
}

/// Plans every statement of the transaction for the values it is given, never from the plan a
/// connection cached for its text. A cached (generic) plan is costed once, for the table sizes
/// of that moment, and kept for the connection's life: one made while `tasks` held a few pages
/// scans the whole table for every set of ids later (a hash join over a sequential scan
/// instead of the primary key), which is what a server that never analyzes its tables
/// (`autovacuum` off) keeps doing for good. A custom plan is costed at each execution for the
/// table as it is then, at the price of a planning per statement (tens of microseconds).
/// Planning transactions, whose statements address tasks and versions by sets of ids, run this
/// way. Not batches: their statements address subscriptions by ranges of `row_id`, which the
/// cached plan already reads by index, while a custom plan made without statistics guesses
/// the range's share of the table and chose worse (a migration of 1,000,000 took 1.18 × the
/// time of the one-statement baseline with custom plans, 1.00 × without). Nor the relay: its
/// read of unsent rows has one right plan (the partial index `outbox_unsent`), which the cached
/// plan finds and a custom one without statistics does not.
const CUSTOM_PLANS: &str = "SET LOCAL plan_cache_mode = force_custom_plan";

/// Begins a transaction that can only read, over one snapshot: what a preview runs in, so
/// that it cannot change anything and its several queries agree with each other.
pub async fn begin_read_only(pool: &PgPool) -> Result<Tx<'static>> {
    let mut tx = pool.begin().await?;
    sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY").execute(&mut *tx).await?;
    Ok(tx)
}

/// Whether the database answers.
pub async fn ping(pool: &PgPool) -> Result<()> {
    sqlx::query("SELECT 1").execute(pool).await?;
    Ok(())
}

/// An opaque cursor for keyset pages: the `seq` of the last row, as text.
pub fn parse_cursor(raw: Option<&str>) -> Result<Option<i64>> {
    match raw {
        None | Some("") => Ok(None),
        Some(raw) => raw
            .parse::<i64>()
            .map(Some)
            .map_err(|_| StoreError::rejected(ErrorCode::BadUserInput, "invalid pagination cursor")),
    }
}

/// A list's `createdAt` bounds (`gt`, `gte`, `lt`, `lte`); unset ones do not narrow it.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct CreatedRange {
    pub gt: Option<chrono::DateTime<chrono::Utc>>,
    pub gte: Option<chrono::DateTime<chrono::Utc>>,
    pub lt: Option<chrono::DateTime<chrono::Utc>>,
    pub lte: Option<chrono::DateTime<chrono::Utc>>,
}

/// The SQL that bounds `column` by a `CreatedRange` bound from parameter `$first` on, in the
/// order `CreatedRange::bind` binds them.
pub(crate) fn created_range_sql(column: &str, first: usize) -> String {
    format!(
        "AND (${a}::timestamptz IS NULL OR {column} > ${a}) AND (${b}::timestamptz IS NULL OR {column} >= ${b})
         AND (${c}::timestamptz IS NULL OR {column} < ${c}) AND (${d}::timestamptz IS NULL OR {column} <= ${d})",
        a = first,
        b = first + 1,
        c = first + 2,
        d = first + 3
    )
}

impl CreatedRange {
    pub(crate) fn bind<'q, O>(
        self,
        query: sqlx::query::QueryAs<'q, sqlx::Postgres, O, sqlx::postgres::PgArguments>,
    ) -> sqlx::query::QueryAs<'q, sqlx::Postgres, O, sqlx::postgres::PgArguments> {
        query.bind(self.gt).bind(self.gte).bind(self.lt).bind(self.lte)
    }
}

/// A page of rows plus the cursor for the next one.
#[derive(Debug, Clone)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next: Option<String>,
}

/// No rows, no next page.
impl<T> Default for Page<T> {
    fn default() -> Self {
        Self { items: Vec::new(), next: None }
    }
}

pub(crate) fn page<T>(mut rows: Vec<T>, limit: i64, seq: impl Fn(&T) -> i64) -> Page<T> {
    let has_more = rows.len() as i64 > limit;
    if has_more {
        rows.truncate(limit as usize);
    }
    let next = if has_more { rows.last().map(|r| seq(r).to_string()) } else { None };
    Page { items: rows, next }
}

/// Page size: what the caller asked for, within 1..=1000, 20 by default.
pub fn page_limit(requested: Option<i64>) -> i64 {
    requested.unwrap_or(20).clamp(1, 1000)
}

#[cfg(test)]
mod transient_tests {
    use super::is_transient;

    /// The error Postgres answers for a statement raising `sqlstate`.
    async fn error_with(conn: &mut sqlx::PgConnection, sqlstate: &str) -> sqlx::Error {
        let raise = format!("DO $$ BEGIN RAISE EXCEPTION 'raised' USING ERRCODE = '{sqlstate}'; END $$");
        sqlx::query(&raise).execute(conn).await.unwrap_err()
    }

    #[sqlx::test(migrations = false)]
    async fn resource_errors_are_transient_and_domain_errors_are_not(pool: sqlx::PgPool) {
        let mut conn = pool.acquire().await.unwrap();
        // disk full, out of memory, too many connections, configuration limit exceeded, and
        // the lock, serialization and shutdown errors
        for sqlstate in ["53100", "53200", "53300", "53400", "40001", "40P01", "55P03", "57014", "57P01"] {
            assert!(is_transient(&error_with(&mut conn, sqlstate).await), "{sqlstate} should be transient");
        }
        // unique and check violations, a syntax error: the same statement fails the same way
        for sqlstate in ["23505", "23514", "42601", "22P02"] {
            assert!(!is_transient(&error_with(&mut conn, sqlstate).await), "{sqlstate} should not be transient");
        }
        assert!(is_transient(&sqlx::Error::PoolTimedOut));
    }
}

#[cfg(test)]
mod environment_tests {
    #[sqlx::test(migrator = "crate::MIGRATOR")]
    async fn an_environment_is_never_deleted(pool: sqlx::PgPool) {
        let env = uuid::Uuid::new_v4();
        sqlx::query("INSERT INTO environments (id, name) VALUES ($1, 'kept')").bind(env).execute(&pool).await.unwrap();
        let refused = sqlx::query("DELETE FROM environments WHERE id = $1").bind(env).execute(&pool).await.unwrap_err();
        let code = refused.as_database_error().and_then(|e| e.code()).map(|c| c.into_owned());
        assert_eq!(code.as_deref(), Some("23001"), "{refused}");
        let kept: i64 = sqlx::query_scalar("SELECT count(*) FROM environments WHERE id = $1")
            .bind(env)
            .fetch_one(&pool)
            .await
            .unwrap();
        assert_eq!(kept, 1);
    }
}
