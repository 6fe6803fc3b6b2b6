//! A Cutover deployment for one test: its own database and queue prefix, the real binary
//! started as separate processes, and helpers to wait on outcomes with a deadline.

use sqlx::postgres::PgConnectOptions;
use sqlx::{ConnectOptions, Connection, PgPool};
use std::path::PathBuf;
use std::process::Stdio;
use std::str::FromStr;
use std::time::{Duration, Instant};
use tokio::process::{Child, Command};

const ADMIN_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

pub struct Deployment {
    pub id: String,
    pub database_url: String,
    pub pool: PgPool,
    pub prefix: String,
    pub key: String,
    processes: Vec<(String, Child)>,
    database: String,
    /// The server's maintenance database, where the test's database is dropped at the end.
    admin: PgConnectOptions,
    env: Vec<(String, String)>,
}

fn admin_options() -> PgConnectOptions {
    let url = std::env::var("DATABASE_URL").unwrap_or_else(|_| ADMIN_URL.to_owned());
    PgConnectOptions::from_str(&url).unwrap().database("postgres").disable_statement_logging()
}

pub fn binary() -> &'static str {
    env!("CARGO_BIN_EXE_cutover")
}

pub fn log_dir() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("e2e-logs");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

impl Deployment {
    /// Creates the database (migrated by the binary itself) and an API key.
    pub async fn new() -> Self {
        Self::with_env(&[]).await
    }

    /// Like `new`, with settings (environment variables) given to every process it starts.
    pub async fn with_env(env: &[(&str, &str)]) -> Self {
        Self::on_server(admin_options(), env).await
    }

    /// Like `with_env`, on the Postgres server `admin` names (one a test started, say).
    pub async fn on_server(admin: PgConnectOptions, env: &[(&str, &str)]) -> Self {
        let id = uuid::Uuid::new_v4().simple().to_string()[..12].to_owned();
        let database = format!("cutover_it_{id}");
        let options = admin.clone();
        let database_url =
            format!("postgres://{}@{}:{}/{}", options.get_username(), options.get_host(), options.get_port(), database);
        let prefix = format!("it.{id}");
        let key_output = Command::new(binary())
            .args(["keys", "create", "--environment", "e2e"])
            .env("CUTOVER_DATABASE_URL", &database_url)
            .output()
            .await
            .unwrap();
        assert!(key_output.status.success(), "keys create failed: {}", String::from_utf8_lossy(&key_output.stderr));
        let key = String::from_utf8(key_output.stdout).unwrap().trim().to_owned();
        assert!(key.starts_with("cut_"), "unexpected key output `{key}`");
        let pool = PgPool::connect_with(PgConnectOptions::from_str(&database_url).unwrap().disable_statement_logging())
            .await
            .unwrap();
        let env = env.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
        Self { id, database_url, pool, prefix, key, processes: Vec::new(), database, admin, env }
    }

    /// Creates another API key of the deployment's environment with `scope` (`server`,
    /// `admin` or `read-only`), through the binary as an operator would.
    pub async fn create_key(&self, scope: &str) -> String {
        let output = Command::new(binary())
            .args(["keys", "create", "--environment", "e2e", "--scope", scope])
            .env("CUTOVER_DATABASE_URL", &self.database_url)
            .output()
            .await
            .unwrap();
        assert!(output.status.success(), "keys create failed: {}", String::from_utf8_lossy(&output.stderr));
        String::from_utf8(output.stdout).unwrap().trim().to_owned()
    }

    fn command(&self, role: &str, extra: &[(&str, String)]) -> Command {
        let mut command = Command::new(binary());
        command
            .arg(role)
            .env("CUTOVER_DATABASE_URL", &self.database_url)
            .env("CUTOVER_QUEUE_PREFIX", &self.prefix)
            .env("CUTOVER_QUEUE_EXPIRES_MS", "180000")
            .env("CUTOVER_SHUTDOWN_GRACE_SECS", "10")
            // the webhook tests' receivers listen on loopback, which is refused by default
            .env("CUTOVER_WEBHOOK_ALLOW_HOSTS", "127.0.0.1")
            .env("RUST_LOG", "info,sqlx=warn,lapin=warn")
            .stdin(Stdio::null())
            .kill_on_drop(true);
        for (name, value) in &self.env {
            command.env(name, value);
        }
        for (name, value) in extra {
            command.env(name, value);
        }
        command
    }

    fn spawn(&mut self, role: &str, name: &str, extra: &[(&str, String)]) {
        let log = log_dir().join(format!("{}-{name}.log", self.id));
        let file = std::fs::OpenOptions::new().create(true).append(true).open(&log).unwrap();
        let child = self
            .command(role, extra)
            .stdout(Stdio::from(file.try_clone().unwrap()))
            .stderr(Stdio::from(file))
            .spawn()
            .unwrap();
        self.processes.push((name.to_owned(), child));
    }

    /// Starts `cutover api` and waits until it answers; returns its base URL.
    pub async fn start_api(&mut self) -> String {
        self.start_api_with(&[]).await
    }

    pub async fn start_api_with(&mut self, extra: &[(&str, String)]) -> String {
        let port = free_port();
        let mut env = vec![("CUTOVER_LISTEN", format!("127.0.0.1:{port}"))];
        env.extend(extra.iter().cloned());
        self.spawn("api", "api", &env);
        let base = format!("http://127.0.0.1:{port}");
        let client = reqwest::Client::new();
        wait_for("the api to answer /healthz", Duration::from_secs(30), || {
            let client = client.clone();
            let url = format!("{base}/healthz");
            async move { client.get(url).send().await.map(|r| r.status().is_success()).unwrap_or(false) }
        })
        .await;
        base
    }

    /// Starts a `cutover worker` process named `name`.
    pub fn start_worker(&mut self, name: &str) {
        self.start_worker_with(name, &[]);
    }

    pub fn start_worker_with(&mut self, name: &str, extra: &[(&str, String)]) {
        let mut env = vec![("CUTOVER_WORKER_ID", format!("{}-{name}", self.id))];
        env.extend(extra.iter().cloned());
        self.spawn("worker", name, &env);
    }

    /// Starts `cutover api` and answers a client for it.
    pub async fn api(&mut self) -> crate::client::ApiClient {
        self.api_with(&[]).await
    }

    pub async fn api_with(&mut self, extra: &[(&str, String)]) -> crate::client::ApiClient {
        let base = self.start_api_with(extra).await;
        crate::client::ApiClient::new(base, self.key.clone())
    }

    fn child(&mut self, name: &str) -> &mut Child {
        &mut self.processes.iter_mut().rev().find(|(n, _)| n == name).unwrap_or_else(|| panic!("no process {name}")).1
    }

    /// SIGKILL: the process dies at once, mid-whatever.
    pub async fn kill(&mut self, name: &str) {
        let child = self.child(name);
        child.start_kill().unwrap();
        child.wait().await.unwrap();
    }

    /// SIGTERM, then waits for the exit; answers the exit code and how long it took.
    pub async fn terminate(&mut self, name: &str, deadline: Duration) -> (Option<i32>, Duration) {
        let child = self.child(name);
        let pid = child.id().expect("the process is running");
        let started = Instant::now();
        let sent = std::process::Command::new("kill").args(["-TERM", &pid.to_string()]).status().unwrap();
        assert!(sent.success());
        let status = tokio::time::timeout(deadline, child.wait())
            .await
            .unwrap_or_else(|_| panic!("{name} did not exit within {deadline:?} of SIGTERM"))
            .unwrap();
        (status.code(), started.elapsed())
    }

    pub async fn scalar(&self, sql: &str) -> i64 {
        sqlx::query_scalar::<_, i64>(sql).fetch_one(&self.pool).await.unwrap()
    }
}

impl Drop for Deployment {
    fn drop(&mut self) {
        for (_, child) in &mut self.processes {
            let _ = child.start_kill();
        }
        let database = self.database.clone();
        let admin = self.admin.clone();
        // the pool and the children are gone with this value; drop the database from a
        // thread of its own, since Drop cannot await
        let _ = std::thread::spawn(move || {
            let Ok(runtime) = tokio::runtime::Builder::new_current_thread().enable_all().build() else { return };
            runtime.block_on(async move {
                if let Ok(mut conn) = sqlx::PgConnection::connect_with(&admin).await {
                    let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS \"{database}\" WITH (FORCE)"))
                        .execute(&mut conn)
                        .await;
                }
            });
        })
        .join();
    }
}

/// Polls `check` until it holds, failing the test after `deadline`.
pub async fn wait_for<F, Fut>(what: &str, deadline: Duration, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = Instant::now();
    loop {
        if check().await {
            return;
        }
        assert!(start.elapsed() < deadline, "timed out after {deadline:?} waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
