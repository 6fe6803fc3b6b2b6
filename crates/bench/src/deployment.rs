//! A Cutover deployment for one scenario: its own database and queue prefix, the release
//! binary started as separate processes, and their peak memory read from /proc.

use anyhow::Context as _;
use sqlx::postgres::PgConnectOptions;
use sqlx::{ConnectOptions, Connection, PgPool};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::str::FromStr;
use std::time::{Duration, Instant};
use tokio::process::{Child, Command};

/// The Postgres server scenarios create their databases on, as `postgres://user@host:port`:
/// `CUTOVER_BENCH_POSTGRES`, or the local one. Another server serves, say, to profile
/// statements on one that loads `pg_stat_statements`.
pub fn postgres_server() -> String {
    std::env::var("CUTOVER_BENCH_POSTGRES").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".into())
}
pub const AMQP_URL: &str = "amqp://guest:guest@127.0.0.1:5672/%2f";

/// The executable the benchmark starts Cutover processes with: this one, which runs
/// Cutover's own entry point (`cutover::run`) when its first argument is `cutover` — so the
/// processes are the current code, built in the same release profile, without a second build.
pub fn cutover_binary() -> anyhow::Result<PathBuf> {
    Ok(std::env::current_exe()?)
}

pub struct Deployment {
    pub pool: PgPool,
    pub database_url: String,
    pub prefix: String,
    pub key: String,
    pub base: String,
    database: String,
    binary: PathBuf,
    processes: Vec<(String, Child)>,
}

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

impl Deployment {
    /// A fresh, migrated database with an API key; no process started yet.
    pub async fn new(binary: &Path, name: &str) -> anyhow::Result<Self> {
        let id = uuid::Uuid::new_v4().simple().to_string()[..10].to_owned();
        let database = format!("cutover_bench_{name}_{id}");
        let database_url = format!("{}/{database}", postgres_server());
        let pool = store::connect_and_migrate(
            &format!("{database_url}?application_name={}", crate::profile::HARNESS_POOL),
            &store::PoolSettings { max_connections: 80, ..store::PoolSettings::default() },
        )
        .await?;
        let key = store::api_keys::create_key(&pool, "bench", store::api_keys::Scope::Server, None).await?.secret;
        Ok(Deployment {
            pool,
            database_url,
            prefix: format!("bench.{id}"),
            key,
            base: String::new(),
            database,
            binary: binary.to_owned(),
            processes: Vec::new(),
        })
    }

    fn spawn(&mut self, role: &str, name: &str, extra: &[(&str, String)]) -> anyhow::Result<()> {
        let mut command = Command::new(&self.binary);
        command
            .args(["cutover", role])
            .env("CUTOVER_DATABASE_URL", &self.database_url)
            .env("CUTOVER_QUEUE_PREFIX", &self.prefix)
            .env("CUTOVER_QUEUE_EXPIRES_MS", "600000")
            .env("RUST_LOG", "warn,sqlx=error")
            // the per-key rate limit is a policy, not a cost: throughput is measured without it
            .env("CUTOVER_RATE_LIMIT_PER_SEC", "0")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .kill_on_drop(true);
        for (k, v) in extra {
            command.env(k, v);
        }
        self.processes.push((name.to_owned(), command.spawn().with_context(|| format!("starting {name}"))?));
        Ok(())
    }

    pub async fn start_api(&mut self) -> anyhow::Result<()> {
        let port = free_port()?;
        self.spawn("api", "api", &[("CUTOVER_LISTEN", format!("127.0.0.1:{port}"))])?;
        self.base = format!("http://127.0.0.1:{port}");
        let client = reqwest::Client::new();
        let deadline = Instant::now() + Duration::from_secs(30);
        while client.get(format!("{}/healthz", self.base)).send().await.is_err() {
            anyhow::ensure!(Instant::now() < deadline, "the api did not come up");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Ok(())
    }

    pub fn start_worker(&mut self, name: &str, extra: &[(&str, String)]) -> anyhow::Result<()> {
        self.spawn("worker", name, extra)
    }

    /// The processes started so far, by name.
    pub fn pids(&self) -> Vec<(String, u32)> {
        self.processes.iter().filter_map(|(n, c)| Some((n.clone(), c.id()?))).collect()
    }

    /// Peak resident memory (VmHWM) of the named process, in MiB.
    pub fn peak_rss_mib(&self, name: &str) -> Option<f64> {
        let pid = self.processes.iter().find(|(n, _)| n == name)?.1.id()?;
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
        let kib: f64 = status.lines().find(|l| l.starts_with("VmHWM:"))?.split_whitespace().nth(1)?.parse().ok()?;
        Some(kib / 1024.0)
    }

    /// Stops the processes and drops the database.
    pub async fn finish(mut self) -> anyhow::Result<()> {
        for (_, child) in &mut self.processes {
            let _ = child.start_kill();
            let _ = child.wait().await;
        }
        self.pool.close().await;
        let options =
            PgConnectOptions::from_str(&format!("{}/postgres", postgres_server()))?.disable_statement_logging();
        let mut conn = sqlx::PgConnection::connect_with(&options).await?;
        sqlx::query(&format!("DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)", self.database)).execute(&mut conn).await?;
        Ok(())
    }
}
