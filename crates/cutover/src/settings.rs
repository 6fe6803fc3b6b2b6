//! Typed settings: every one an environment variable with a `CUTOVER_` prefix (or a flag),
//! defaulting to the local services so that `cutover up` needs no configuration. URLs that can
//! hold passwords are wrapped so that they never print.

use clap::Args;
use std::fmt;
use std::time::Duration;

/// A value that must not reach logs or `Debug` output.
#[derive(Clone)]
pub struct Secret(String);

impl Secret {
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

impl std::str::FromStr for Secret {
    type Err = std::convert::Infallible;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(Secret(s.to_owned()))
    }
}

#[derive(Debug, Args)]
#[command(next_help_heading = "Server settings")]
pub struct Settings {
    /// Postgres URL; the database is created if absent.
    #[arg(
        long,
        env = "CUTOVER_DATABASE_URL",
        default_value = "postgres://postgres@127.0.0.1:5432/cutover",
        global = true,
        hide_env_values = true
    )]
    pub database_url: Secret,
    /// RabbitMQ URL.
    #[arg(
        long,
        env = "CUTOVER_AMQP_URL",
        default_value = "amqp://guest:guest@127.0.0.1:5672/%2f",
        global = true,
        hide_env_values = true
    )]
    pub amqp_url: Secret,
    /// Address the api listens on.
    #[arg(long, env = "CUTOVER_LISTEN", default_value = "127.0.0.1:8080", global = true)]
    pub listen: String,
    /// Prefix of every exchange and queue name.
    #[arg(long, env = "CUTOVER_QUEUE_PREFIX", default_value = "cutover", global = true)]
    pub queue_prefix: String,
    /// Queues delete themselves after this many ms unused (unset: never). For tests.
    #[arg(long, env = "CUTOVER_QUEUE_EXPIRES_MS", global = true)]
    pub queue_expires_ms: Option<u32>,
    /// Unacknowledged batch deliveries per worker, i.e. batches moved at once.
    #[arg(long, env = "CUTOVER_PREFETCH", default_value_t = 4, global = true)]
    pub prefetch: u16,
    /// Unacknowledged task deliveries per worker, among which it gathers the sets it plans.
    #[arg(long, env = "CUTOVER_TASK_PREFETCH", default_value_t = 64, global = true)]
    pub task_prefetch: u16,
    /// At most how many waiting task deliveries a worker plans together in one transaction
    /// (1: each alone).
    #[arg(long, env = "CUTOVER_TASK_SET_SIZE", default_value_t = 32, global = true)]
    pub task_set_size: u16,
    /// At most how many publishes waiting to be accepted the api writes together, by one
    /// statement (1: each alone).
    #[arg(long, env = "CUTOVER_ACCEPT_SET_SIZE", default_value_t = 32, global = true)]
    pub accept_set_size: u16,
    /// Plannings (a set, or a task alone) a worker runs at once, each on a connection.
    #[arg(long, env = "CUTOVER_TASK_CONCURRENCY", default_value_t = 16, global = true)]
    pub task_concurrency: u16,
    /// Subscriptions moved per batch (one transaction each).
    #[arg(long, env = "CUTOVER_BATCH_SIZE", default_value_t = 1000, global = true)]
    pub batch_size: i64,
    /// Attempts a task or batch gets before it fails.
    #[arg(long, env = "CUTOVER_MAX_ATTEMPTS", default_value_t = 5, global = true)]
    pub max_attempts: i32,
    /// Milliseconds a job waits for a row lock before the try counts as a transient failure.
    #[arg(long, env = "CUTOVER_LOCK_TIMEOUT_MS", default_value_t = 10_000, global = true)]
    pub lock_timeout_ms: u64,
    /// Seconds without progress after which a task's work is announced again.
    #[arg(long, env = "CUTOVER_RESCUE_AFTER_SECS", default_value_t = 120, global = true)]
    pub rescue_after_secs: u64,
    /// Milliseconds between the scheduler's looks for due version changes.
    #[arg(long, env = "CUTOVER_SCHEDULER_TICK_MS", default_value_t = 1000, global = true)]
    pub scheduler_tick_ms: u64,
    /// Seconds a shutdown waits for in-flight work.
    #[arg(long, env = "CUTOVER_SHUTDOWN_GRACE_SECS", default_value_t = 30, global = true)]
    pub shutdown_grace_secs: u64,
    /// Postgres connections per process.
    #[arg(long, env = "CUTOVER_DB_MAX_CONNECTIONS", default_value_t = 24, global = true)]
    pub db_max_connections: u32,
    /// Worker id in leases and the workers table (default: random).
    #[arg(long, env = "CUTOVER_WORKER_ID", global = true)]
    pub worker_id: Option<String>,
    /// Requests a second each API key may make on average (0: no limit). Past it: 429
    /// `RateLimitExceeded` with `Retry-After`.
    #[arg(long, env = "CUTOVER_RATE_LIMIT_PER_SEC", default_value_t = 1000, global = true)]
    pub rate_limit_per_sec: u32,
    /// Requests an API key may make in a burst above its rate.
    #[arg(long, env = "CUTOVER_RATE_LIMIT_BURST", default_value_t = 2000, global = true)]
    pub rate_limit_burst: u32,
    /// Milliseconds a webhook request may take before the attempt counts as failed.
    #[arg(long, env = "CUTOVER_WEBHOOK_TIMEOUT_MS", default_value_t = 10_000, global = true)]
    pub webhook_timeout_ms: u64,
    /// Attempts a webhook delivery gets before it is marked FAILED.
    #[arg(long, env = "CUTOVER_WEBHOOK_MAX_ATTEMPTS", default_value_t = 10, global = true)]
    pub webhook_max_attempts: i32,
    /// Milliseconds before the first webhook retry; doubled after each failure (with jitter,
    /// at most an hour).
    #[arg(long, env = "CUTOVER_WEBHOOK_BACKOFF_MS", default_value_t = 10_000, global = true)]
    pub webhook_backoff_ms: u64,
    /// Milliseconds between the webhook deliverer's looks for due deliveries.
    #[arg(long, env = "CUTOVER_WEBHOOK_TICK_MS", default_value_t = 500, global = true)]
    pub webhook_tick_ms: u64,
    /// Internal webhook receivers allowed (comma-separated host names and IP addresses or CIDR
    /// blocks); URLs resolving to loopback, private, link-local or metadata addresses are
    /// refused otherwise.
    #[arg(long, env = "CUTOVER_WEBHOOK_ALLOW_HOSTS", default_value = "", value_parser = domain::webhook::AddressPolicy::parse, global = true)]
    pub webhook_allow_hosts: domain::webhook::AddressPolicy,
    /// How long the outbox relay waits for the broker's confirms of a batch before it drops
    /// the connection, releases the rows and reconnects.
    #[arg(long, env = "CUTOVER_PUBLISH_TIMEOUT_MS", default_value = "10000", global = true)]
    pub publish_timeout_ms: u64,
    /// `text` or `json`.
    #[arg(long, env = "CUTOVER_LOG_FORMAT", default_value = "text", global = true)]
    pub log_format: String,
    /// Where `cutover worker` serves `/metrics` (the api serves its own on `--listen`).
    #[arg(long, env = "CUTOVER_METRICS_LISTEN", global = true)]
    pub metrics_listen: Option<String>,
    /// The address clients reach the api at; an `https://` one makes the dashboard session
    /// cookie `Secure`.
    #[arg(long, env = "CUTOVER_PUBLIC_URL", global = true)]
    pub public_url: Option<String>,
    /// The environment whose dashboard sees and resolves dead letters that belong to no
    /// environment (a message naming no known task).
    #[arg(long, env = "CUTOVER_OPERATOR_ENVIRONMENT", global = true)]
    pub operator_environment: Option<String>,
}

impl Settings {
    pub fn pool(&self) -> store::PoolSettings {
        store::PoolSettings { max_connections: self.db_max_connections, ..store::PoolSettings::default() }
    }

    pub fn topology(&self) -> queue::Topology {
        let mut topology = queue::Topology::new(self.queue_prefix.clone());
        topology.queue_expires_ms = self.queue_expires_ms;
        topology
    }

    pub fn rescue_after(&self) -> Duration {
        Duration::from_secs(self.rescue_after_secs.max(1))
    }

    pub fn shutdown_grace(&self) -> Duration {
        Duration::from_secs(self.shutdown_grace_secs)
    }

    pub fn worker(&self) -> worker::WorkerSettings {
        let mut settings = worker::WorkerSettings {
            prefetch: self.prefetch.max(1),
            task_prefetch: self.task_prefetch.max(1),
            task_set_size: self.task_set_size.max(1),
            task_concurrency: self.task_concurrency.max(1),
            batch_size: self.batch_size.max(1),
            shutdown_grace: self.shutdown_grace(),
            lock_timeout: Duration::from_millis(self.lock_timeout_ms.max(1)),
            scheduler_tick: Duration::from_millis(self.scheduler_tick_ms.max(10)),
            ..worker::WorkerSettings::default()
        };
        if let Some(id) = &self.worker_id {
            settings.worker_id = id.clone();
        }
        settings
    }

    pub fn deliverer(&self) -> worker::DelivererSettings {
        worker::DelivererSettings {
            tick: Duration::from_millis(self.webhook_tick_ms.max(10)),
            timeout: Duration::from_millis(self.webhook_timeout_ms.max(1)),
            max_attempts: self.webhook_max_attempts.max(1),
            backoff: Duration::from_millis(self.webhook_backoff_ms),
            policy: self.webhook_allow_hosts.clone(),
            ..worker::DelivererSettings::default()
        }
    }

    pub fn api(&self) -> api::ApiSettings {
        api::ApiSettings {
            max_attempts: self.max_attempts.max(1),
            queue_prefix: self.queue_prefix.clone(),
            webhook_policy: self.webhook_allow_hosts.clone(),
            https: self.public_url.as_deref().is_some_and(|url| url.to_ascii_lowercase().starts_with("https://")),
            operator_environment: self.operator_environment.clone().filter(|name| !name.trim().is_empty()),
            accept_set_size: usize::from(self.accept_set_size.max(1)),
            ..api::ApiSettings::default()
        }
    }
}
