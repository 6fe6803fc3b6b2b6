//! Where a scenario's time goes, measured while it runs: CPU time per operation of each
//! process involved (read from /proc, so it counts work done, not waiting — fair even on a
//! busy machine), commits per operation, and — when the server has `pg_stat_statements`
//! loaded — the statements that ran, per operation. A miss in the table is explained from
//! this, not from a guess.

use crate::deployment::Deployment;
use serde::Serialize;
use sqlx::PgPool;
use std::collections::BTreeMap;

/// One measured window's profile.
#[derive(Debug, Clone, Serialize)]
pub struct Profile {
    pub scenario: String,
    pub variant: String,
    /// Operations the window did (requests, tasks, subscriptions, messages).
    pub ops: u64,
    /// CPU milliseconds per operation, by process: each Cutover process by name, `postgres`
    /// (the backends connected to this scenario's database), `postgres (harness pool)` (the part
    /// of `postgres` spent by the backends of the harness's own pool: its seeding, polls and
    /// probes in Cutover's windows; a baseline run on that pool does its work there), `bench`
    /// (this harness: the clients, and the baselines' own work).
    pub cpu_ms_per_op: BTreeMap<String, f64>,
    /// Transactions committed in the scenario's database per operation.
    pub commits_per_op: f64,
    /// The statements that took the most time, per operation (empty without
    /// `pg_stat_statements`).
    pub statements: Vec<Statement>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Statement {
    pub query: String,
    pub calls_per_op: f64,
    /// Execution time per operation.
    pub ms_per_op: f64,
    pub mean_ms: f64,
    /// Planning time per operation: 0 unless the server sets `pg_stat_statements.track_planning`.
    pub plan_ms_per_op: f64,
}

/// Clock ticks per second of /proc's utime and stime; 100 on every Linux this runs on.
const TICKS_PER_SEC: f64 = 100.0;

fn cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // the command name may hold spaces; fields after it are space-separated
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) / TICKS_PER_SEC)
}

/// The start of a measured window.
pub struct Probe {
    cpu: BTreeMap<String, f64>,
    backends: BTreeMap<u32, f64>,
    commits: i64,
    statements: bool,
}

/// The `application_name` of the harness's own pool (`Deployment::pool`).
pub const HARNESS_POOL: &str = "cutover-bench";

/// The backends connected to the scenario's database, each with whether it serves the
/// harness's own pool.
async fn backend_pids(pool: &PgPool) -> Vec<(u32, bool)> {
    sqlx::query_as::<_, (i32, bool)>(
        "SELECT pid, application_name = $1 FROM pg_stat_activity WHERE datname = current_database()",
    )
    .bind(HARNESS_POOL)
    .fetch_all(pool)
    .await
    .unwrap_or_default()
    .into_iter()
    .map(|(pid, harness)| (pid as u32, harness))
    .collect()
}

async fn commits(pool: &PgPool) -> i64 {
    // the statistics collector is read through a snapshot; clear it so the figure is current
    let _ = sqlx::query("SELECT pg_stat_clear_snapshot()").execute(pool).await;
    sqlx::query_scalar("SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()")
        .fetch_one(pool)
        .await
        .unwrap_or(0)
}

impl Probe {
    /// Starts a window: samples CPU, commits, and resets this database's statement counters.
    pub async fn start(d: &Deployment) -> Probe {
        let statements = sqlx::query("CREATE EXTENSION IF NOT EXISTS pg_stat_statements").execute(&d.pool).await.is_ok()
            && sqlx::query(
                "SELECT pg_stat_statements_reset(0, (SELECT oid FROM pg_database WHERE datname = current_database()), 0)",
            )
            .execute(&d.pool)
            .await
            .is_ok();
        let mut backends = BTreeMap::new();
        for (pid, _) in backend_pids(&d.pool).await {
            if let Some(s) = cpu_seconds(pid) {
                backends.insert(pid, s);
            }
        }
        Probe { cpu: sample(d), backends, commits: commits(&d.pool).await, statements }
    }

    /// Ends the window and divides what was spent by `ops`.
    pub async fn finish(self, d: &Deployment, scenario: &str, variant: &str, ops: u64) -> Profile {
        let per_op = |v: f64| if ops == 0 { 0.0 } else { v / ops as f64 };
        let end = sample(d);
        let mut cpu_ms_per_op = BTreeMap::new();
        for (name, seconds) in &end {
            let spent = seconds - self.cpu.get(name).copied().unwrap_or(0.0);
            cpu_ms_per_op.insert(name.clone(), per_op(spent * 1000.0));
        }
        // backends still connected; one that came and went inside the window is not counted
        let (mut postgres, mut harness) = (0.0, 0.0);
        for (pid, harness_pool) in backend_pids(&d.pool).await {
            if let Some(s) = cpu_seconds(pid) {
                let spent = s - self.backends.get(&pid).copied().unwrap_or(0.0);
                postgres += spent;
                if harness_pool {
                    harness += spent;
                }
            }
        }
        cpu_ms_per_op.insert("postgres".into(), per_op(postgres * 1000.0));
        cpu_ms_per_op.insert("postgres (harness pool)".into(), per_op(harness * 1000.0));
        let commits_per_op = per_op((commits(&d.pool).await - self.commits) as f64);
        let statements = if self.statements { top_statements(&d.pool, ops).await } else { Vec::new() };
        Profile {
            scenario: scenario.to_owned(),
            variant: variant.to_owned(),
            ops,
            cpu_ms_per_op,
            commits_per_op,
            statements,
        }
    }
}

fn sample(d: &Deployment) -> BTreeMap<String, f64> {
    let mut cpu = BTreeMap::new();
    for (name, pid) in d.pids() {
        if let Some(s) = cpu_seconds(pid) {
            cpu.insert(name, s);
        }
    }
    if let Some(s) = cpu_seconds(std::process::id()) {
        cpu.insert("bench".into(), s);
    }
    cpu
}

async fn top_statements(pool: &PgPool, ops: u64) -> Vec<Statement> {
    let rows: Vec<(String, i64, f64, f64, f64)> = sqlx::query_as(
        "SELECT regexp_replace(query, '\\s+', ' ', 'g'), calls, total_exec_time, mean_exec_time, total_plan_time
         FROM pg_stat_statements
         WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())
           AND query NOT LIKE '%pg_stat_%' AND query NOT LIKE '%pg_database%'
         ORDER BY total_exec_time + total_plan_time DESC LIMIT 12",
    )
    .fetch_all(pool)
    .await
    .unwrap_or_default();
    let ops = ops.max(1) as f64;
    rows.into_iter()
        .map(|(query, calls, total, mean, plan)| Statement {
            query: query.chars().take(160).collect(),
            calls_per_op: calls as f64 / ops,
            ms_per_op: total / ops,
            mean_ms: mean,
            plan_ms_per_op: plan / ops,
        })
        .collect()
}
